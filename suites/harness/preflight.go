package harness

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PreflightTimeout bounds the connection check before any spec.
const PreflightTimeout = 30 * time.Second

// ErrPreflight marks a target the suite cannot judge at all: without the
// check every spec would fail on the same dial error or refused login,
// and a report would blame the server for a typo in the settings.
var ErrPreflight = errors.New("preflight")

// Hints name the settings a user fixes after a failed preflight, in the
// caller's words: environment variables for ginkgo, flags for the probe.
type Hints struct {
	Connect  string
	Account  string
	Account2 string
}

// EnvHints are the Hints of the ginkgo path.
func EnvHints() Hints {
	return Hints{
		Connect:  fmt.Sprintf("check %s, %s, %s and, for TLS, %s, %s or %s", EnvHost, EnvPort, EnvTLS, EnvCAFile, EnvServerName, EnvInsecureSkipVerify),
		Account:  fmt.Sprintf("check %s and %s", EnvUser, EnvPassword),
		Account2: fmt.Sprintf("check %s and %s", EnvUser2, EnvPassword2),
	}
}

// Preflight connects to a remote target and logs in with each configured
// account, so that a wrong port, an untrusted certificate or a wrong
// password stops the run with one message instead of failing every spec.
// The bundled server needs no check.
func (t *Target) Preflight(ctx context.Context, h Hints) error {
	if t.ref != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, PreflightTimeout)
	defer cancel()
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
		return fmt.Errorf("%w: "+how+" (%s)", ErrPreflight, t.Name(), err, h.Connect)
	}
	accounts := []struct {
		get  func(context.Context) (Account, error)
		hint string
	}{{t.Account, h.Account}}
	if t.Config.User2 != "" {
		accounts = append(accounts, struct {
			get  func(context.Context) (Account, error)
			hint string
		}{t.SecondAccount, h.Account2})
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
			return fmt.Errorf("%w: cannot log in to %s as %s: %v (%s)", ErrPreflight, t.Name(), a.User, err, acc.hint)
		}
	}
	return nil
}
