package runner

import (
	"context"
	"fmt"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// ErrPreflight marks a target the suite cannot judge at all.
var ErrPreflight = harness.ErrPreflight

// flagHints name the probe's flags where the suite's own check would name
// environment variables.
var flagHints = harness.Hints{
	Connect:  "check --host, --port, --tls/--starttls and, for TLS, --ca-file, --server-name or --insecure-skip-verify",
	Account:  "check --user and --password-env/--password-file",
	Account2: "check --user2 and --password2-env/--password2-file",
}

// preflight connects to a remote target and logs in with each configured
// account through the suite's own wire client, so the probe can say what
// to fix before running specs against it.
func preflight(ctx context.Context, cfg harness.Config) error {
	ctx, cancel := context.WithTimeout(ctx, harness.PreflightTimeout)
	defer cancel()
	t, err := harness.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	defer t.Close()
	return t.Preflight(ctx, flagHints)
}
