// Package embed is the one way to start the bundled reference server: a
// store seeded with mailboxes, the server on its listeners, and Control,
// through which tests and specs reach the server's state. The
// reference-server command, the suite's harness and the interop tests
// all start it here.
package embed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/delivery"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
	"github.com/pop3conformance/pop3conformance/reference-server/server"
)

// Loopback is a listen address on a loopback port the system picks.
const Loopback = "127.0.0.1:0"

// Options say how to start an instance.
type Options struct {
	// Profile is what the server does; required, with every key known.
	Profile *profile.Profile
	// Dir holds the store; "" is a temporary directory that Close
	// removes.
	Dir string
	// Seed is the mail to serve (users.yaml and the .eml files it names);
	// nil serves the fixture mailboxes.
	Seed fs.FS
	// Plain and TLS are the listen addresses of the plain (and STLS)
	// listener and of the implicit-TLS one; "" leaves that listener off.
	Plain, TLS string
	// TLSConfig holds the certificate; nil makes a self-signed one for
	// localhost, 127.0.0.1 and ::1.
	TLSConfig *tls.Config
	// Credentials say what account files keep of a password; nil keeps
	// the password itself.
	Credentials *maildrop.Credentials
	// Clock, when not zero, starts a test clock for the store (delivery
	// times, retention): it reads Clock and moves only by
	// Control.Advance. The seed is delivered at that time.
	Clock time.Time
	// MaxConnections and Site are server.Config's.
	MaxConnections int
	Site           string
	// Delivery is an address that accepts mail for the store over SMTP
	// (LMTP when LMTP is set); "" accepts none.
	Delivery string
	LMTP     bool
	// Logger receives the logs of the server, the store and delivery;
	// nil discards them.
	Logger *slog.Logger
}

// Instance is a running server.
type Instance struct {
	// Profile is what the server does.
	Profile *profile.Profile
	// Plain and TLS are the addresses the listeners took; "" for one
	// that is off.
	Plain, TLS string
	// Delivery is the address of the SMTP or LMTP listener, "" if none.
	Delivery string
	// CertPool trusts the server's certificate.
	CertPool *x509.CertPool
	// Dir is the store's directory.
	Dir string
	// Control reaches the server's state.
	Control Control

	srv     *server.Server
	mta     *delivery.Server
	tempDir bool
}

// Start opens and seeds the store and starts the server and, if asked
// for, delivery. ctx bounds the start only; Close stops the instance.
func Start(ctx context.Context, o Options) (in *Instance, err error) {
	if o.Profile == nil {
		return nil, errors.New("embed: no profile")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	in = &Instance{Profile: o.Profile, Dir: o.Dir}
	if in.Dir == "" {
		if in.Dir, err = os.MkdirTemp("", "reference-server-"); err != nil {
			return nil, fmt.Errorf("temporary data directory: %w", err)
		}
		in.tempDir = true
	}
	defer func() {
		if err != nil {
			in.Close(context.WithoutCancel(ctx))
			in = nil
		}
	}()
	if err := in.openStore(ctx, o, logger); err != nil {
		return in, err
	}
	in.srv, err = server.New(server.Config{
		Profile:        o.Profile,
		Store:          in.Control.store,
		TLS:            o.TLSConfig,
		Logger:         logger,
		MaxConnections: o.MaxConnections,
		Site:           o.Site,
	})
	if err != nil {
		return in, err
	}
	if err := in.startDelivery(o, logger); err != nil {
		return in, err
	}
	if err := in.srv.Start(o.Plain, o.TLS); err != nil {
		return in, fmt.Errorf("starting the server: %w", err)
	}
	plain, secure := in.srv.Addrs()
	in.Plain, in.TLS = addrString(plain), addrString(secure)
	in.CertPool = in.srv.CertPool()
	return in, nil
}

// openStore opens the store in in.Dir and seeds it.
func (in *Instance) openStore(ctx context.Context, o Options, logger *slog.Logger) error {
	seed := o.Seed
	if seed == nil {
		seed = fixtures.Mailboxes()
	}
	users, err := maildrop.ReadSeed(seed)
	if err != nil {
		return err
	}
	mo := maildrop.Options{Logger: logger.With("component", "maildrop"), Credentials: o.Credentials}
	var clock *testClock
	if !o.Clock.IsZero() {
		clock = &testClock{now: o.Clock}
		mo.Now = clock.Now
	}
	store, err := maildrop.Open(in.Dir, mo)
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.Seed(seed); err != nil {
		return fmt.Errorf("seeding the store: %w", err)
	}
	in.Control = Control{store: store, seed: users, clock: clock}
	return nil
}

// startDelivery listens for SMTP or LMTP when Options.Delivery asks.
func (in *Instance) startDelivery(o Options, logger *slog.Logger) error {
	if o.Delivery == "" {
		return nil
	}
	ln, err := net.Listen("tcp", o.Delivery)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.Delivery, err)
	}
	in.mta = delivery.New(delivery.Config{Store: in.Control.store, Logger: logger.With("component", "delivery"), LMTP: o.LMTP})
	in.Delivery = ln.Addr().String()
	go func() {
		if err := in.mta.Serve(ln); err != nil {
			logger.Error("delivery listener stopped", "err", err)
		}
	}()
	// Without a component: tests read the address from this line.
	logger.Info("delivery listening", "addr", in.Delivery, "lmtp", o.LMTP)
	return nil
}

// Close stops the server and waits for its sessions to end or ctx, stops
// delivery, and removes the store's directory if Start made it.
func (in *Instance) Close(ctx context.Context) error {
	var errs []error
	if in.srv != nil {
		errs = append(errs, in.srv.Shutdown(ctx))
	}
	if in.mta != nil {
		errs = append(errs, in.mta.Close())
	}
	if in.tempDir {
		errs = append(errs, os.RemoveAll(in.Dir))
	}
	return errors.Join(errs...)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
