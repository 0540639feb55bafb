package runner

import (
	"context"
	"fmt"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// ErrPreflight marks a target the suite cannot judge at all.
var ErrPreflight = harness.ErrPreflight

// preflight connects to a remote target and logs in with each configured
// account through the suite's own wire client, so the probe can say what
// to fix before running specs against it (the console names the flags:
// cli.flagHints).
func preflight(ctx context.Context, cfg harness.Config) error {
	ctx, cancel := context.WithTimeout(ctx, harness.PreflightTimeout)
	defer cancel()
	t, err := harness.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	defer t.Close()
	return t.Preflight(ctx)
}
