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

// Preflight connects to a remote target and logs in with each configured
// account, so that a wrong port, an untrusted certificate or a wrong
// password stops the run with one message instead of failing every spec.
// The bundled server needs no check.
//
// Its messages name the environment variables to check; the probe's
// console and reports name its flags instead (cli.flagHints).
func (t *Target) Preflight(ctx context.Context) error {
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
		return fmt.Errorf("%w: "+how+" (check %s, %s, %s and, for TLS, %s, %s or %s)",
			ErrPreflight, t.Name(), err, EnvHost, EnvPort, EnvTLS, EnvCAFile, EnvServerName, EnvInsecureSkipVerify)
	}
	type account struct {
		get  func(context.Context) (Account, error)
		hint string
	}
	accounts := []account{{t.Account, "check " + EnvUser + " and " + EnvPassword}}
	if t.Config.User2 != "" {
		accounts = append(accounts, account{t.SecondAccount, "check " + EnvUser2 + " and " + EnvPassword2})
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
