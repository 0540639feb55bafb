// Package embed starts the bundled reference server inside another
// program or test: a store in a directory, seeded with the fixture
// mailboxes, and the server listening on loopback.
package embed

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
	"github.com/pop3conformance/pop3conformance/reference-server/server"
)

// Options say how to start an instance.
type Options struct {
	// Profile is what the server does; required.
	Profile *profile.Profile
	// Dir holds the store; required (a test's t.TempDir()).
	Dir string
	// Seed is the mail to serve; nil serves the fixture mailboxes.
	Seed fs.FS
	// Logger receives the server's and the store's logs; nil discards.
	Logger *slog.Logger
	// Listen is the plain listener's address; "" is 127.0.0.1:0.
	Listen string
}

// Instance is a running server.
type Instance struct {
	Server *server.Server
	Store  *maildrop.Store
	// Plain is the address the plain listener took.
	Plain net.Addr
}

// Start opens the store, seeds it and starts the server.
func Start(o Options) (*Instance, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	store, err := maildrop.Open(o.Dir, maildrop.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	seed := o.Seed
	if seed == nil {
		if seed, err = fs.Sub(fixtures.FS, "mailboxes"); err != nil {
			return nil, fmt.Errorf("fixture mailboxes: %w", err)
		}
	}
	if err := store.Seed(seed); err != nil {
		return nil, fmt.Errorf("seeding the store: %w", err)
	}
	srv, err := server.New(server.Config{Profile: o.Profile, Store: store, Logger: logger})
	if err != nil {
		return nil, err
	}
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if err := srv.Start(listen, ""); err != nil {
		return nil, fmt.Errorf("starting the server: %w", err)
	}
	plain, _ := srv.Addrs()
	return &Instance{Server: srv, Store: store, Plain: plain}, nil
}

// Close stops the server and waits for its sessions to end.
func (i *Instance) Close(ctx context.Context) error { return i.Server.Shutdown(ctx) }
