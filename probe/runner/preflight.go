package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"pop3conformance/suites/harness"
)

// preflightTimeout bounds the connection check before the suite starts.
const preflightTimeout = 30 * time.Second

// ErrPreflight marks a target the suite cannot judge at all: without it
// every spec would fail on the same dial error and the report would blame
// the server for a typo in --host.
var ErrPreflight = errors.New("preflight")

// preflight connects to a remote target and logs in with each configured
// account through the suite's own wire client, so the probe can say what
// to fix before running specs against it.
func preflight(ctx context.Context, cfg harness.Config) error {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	t, err := harness.Open(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	defer t.Close()
	c, err := t.Dial(ctx)
	if c != nil {
		c.Close()
	}
	if err != nil {
		// c is nil when not even TCP connected; otherwise the server
		// accepted and then failed the greeting or the TLS handshake.
		how := "cannot connect to %s: %v"
		if c != nil {
			how = "connected to %s, but %v"
		}
		return fmt.Errorf("%w: "+how+" (check --host, --port, --tls/--starttls and, for TLS, --ca-file, --server-name or --insecure-skip-verify)",
			ErrPreflight, t.Name(), err)
	}
	accounts := []struct {
		get   func(context.Context) (harness.Account, error)
		flags string
	}{
		{t.Account, "--user and --password-env/--password-file"},
	}
	if cfg.User2 != "" {
		accounts = append(accounts, struct {
			get   func(context.Context) (harness.Account, error)
			flags string
		}{t.SecondAccount, "--user2 and --password2-env/--password2-file"})
	}
	for _, acc := range accounts {
		a, err := acc.get(ctx)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPreflight, err)
		}
		c, err := t.Login(ctx, a)
		if c != nil {
			_, _ = c.Quit()
			c.Close()
		}
		if err != nil {
			return fmt.Errorf("%w: cannot log in to %s as %s: %v (check %s)", ErrPreflight, t.Name(), a.User, err, acc.flags)
		}
	}
	return nil
}
