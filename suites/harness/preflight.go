package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	a, err := t.Account(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	var (
		err2 error
		wg   sync.WaitGroup
	)
	second := func() { err2 = t.preflightLogin(ctx, t.SecondAccount, EnvUser2, EnvPassword2) }
	// Another maildrop, so no lock stands between the two logins.
	together := t.Config.Sessions >= 2 && t.Config.User2 != t.Config.User
	if t.Config.User2 != "" && together {
		wg.Go(second)
	}
	// The first account logs in on the connection that shows whether
	// the server answers at all.
	c, err := t.Dial(ctx)
	if err != nil {
		if c != nil {
			c.Close()
		}
		wg.Wait()
		// c is nil when not even TCP connected; otherwise the server
		// accepted and then failed the greeting or the TLS handshake.
		how := "cannot connect to %s: %v"
		if c != nil {
			how = "connected to %s, but %v"
		}
		return fmt.Errorf("%w: "+how+" (check %s, %s, %s and, for TLS, %s, %s or %s)",
			ErrPreflight, t.Name(), err, EnvHost, EnvPort, EnvTLS, EnvCAFile, EnvServerName, EnvInsecureSkipVerify)
	}
	c, err = t.loginOnFirst(ctx, c, a)
	endSession(c, err)
	if err != nil {
		wg.Wait()
		return fmt.Errorf("%w: cannot log in to %s as %s: %v (check %s and %s)", ErrPreflight, t.Name(), a.User, err, EnvUser, EnvPassword)
	}
	if t.Config.User2 != "" && !together {
		second()
	}
	wg.Wait()
	return err2
}

// preflightLogin logs in with the account get returns and quits.
func (t *Target) preflightLogin(ctx context.Context, get func(context.Context) (Account, error), userVar, passVar string) error {
	a, err := get(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	c, err := t.Login(ctx, a)
	endSession(c, err)
	if err != nil {
		return fmt.Errorf("%w: cannot log in to %s as %s: %v (check %s and %s)", ErrPreflight, t.Name(), a.User, err, userVar, passVar)
	}
	return nil
}

// endSession quits a session that logged in and closes c, if any.
func endSession(c *Conn, err error) {
	if c == nil {
		return
	}
	if err == nil {
		_, _ = c.Quit()
	}
	c.Close()
}
