// Package server is the reference POP3 server: listeners, connection
// limits and TLS here; the line reader and writer in conn.go; the state
// machine in session.go; one file per command family.
//
// Everything in which Exchange and RFC 1939 differ comes from the
// profile.Profile in Config; the package holds no such literal.
package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// Config configures a Server.
type Config struct {
	Profile *profile.Profile // required; the server never mutates it
	Store   *maildrop.Store  // required
	// TLS is used for STLS and the implicit-TLS listener; nil: a
	// self-signed certificate for localhost, 127.0.0.1 and ::1 is made at
	// New. Whatever is given, the server negotiates TLS 1.2 or later with
	// Go's default cipher suites (see hardenTLS).
	TLS    *tls.Config
	Logger *slog.Logger // nil: discard
	// MaxConnections bounds concurrent sessions over both listeners; 0:
	// the profile's max_connections (0 there too: unlimited). Excess
	// connections get "-ERR [SYS/TEMP] ..." and are closed.
	MaxConnections int
	// Site is the server's site; "" means "local". A user whose site
	// differs is homed elsewhere (C0010).
	Site string
}

// Server serves POP3 on any number of listeners.
type Server struct {
	prof     *profile.Profile
	store    *maildrop.Store
	tls      *tls.Config
	certPool *x509.CertPool
	log      *slog.Logger
	maxConns int
	site     string
	hostname string

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc
	seq    atomic.Uint64 // connection ids, also in APOP timestamps
	wg     sync.WaitGroup

	// lastLogin is when each mailbox last logged in (LOGIN-DELAY).
	loginMu   sync.Mutex
	lastLogin map[string]time.Time

	mu        sync.Mutex
	closed    bool
	active    int
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	plainAddr net.Addr
	tlsAddr   net.Addr
}

// defaultSite is the site of a server or user that names none.
const defaultSite = "local"

// New checks cfg and prepares a server.
func New(cfg Config) (*Server, error) {
	if cfg.Profile == nil {
		return nil, errors.New("server: no profile")
	}
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
	}
	if err := cfg.Profile.Validate(); err != nil {
		return nil, fmt.Errorf("server: profile %s: %w", cfg.Profile.Name, err)
	}
	if cfg.MaxConnections < 0 {
		return nil, fmt.Errorf("server: max connections %d is negative", cfg.MaxConnections)
	}
	s := &Server{
		prof:      cfg.Profile,
		store:     cfg.Store,
		log:       cfg.Logger,
		maxConns:  cfg.MaxConnections,
		site:      cfg.Site,
		lastLogin: make(map[string]time.Time),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxConns == 0 {
		s.maxConns = cfg.Profile.MaxConnections
	}
	if s.site == "" {
		s.site = defaultSite
	}
	s.hostname, _ = os.Hostname()
	if s.hostname == "" {
		s.hostname = "localhost"
	}
	var err error
	if cfg.TLS != nil {
		s.tls = cfg.TLS.Clone()
		s.certPool, err = poolOf(s.tls)
	} else {
		s.tls, s.certPool, err = selfSigned()
	}
	if err != nil {
		return nil, fmt.Errorf("server: TLS: %w", err)
	}
	if err := hardenTLS(s.tls); err != nil {
		return nil, fmt.Errorf("server: TLS: %w", err)
	}
	st := cfg.Profile.Storage
	cfg.Store.SetPolicy(maildrop.Policy{
		QuotaOctets:         st.QuotaOctets,
		QuotaWarningPercent: st.QuotaWarningPercent,
		RetentionDays:       st.RetentionDays,
	})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Serve accepts plain POP3 connections (with STLS when the profile offers
// it) until Shutdown, then returns nil.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS accepts implicit-TLS connections (pop3s) until Shutdown.
func (s *Server) ServeTLS(ln net.Listener) error { return s.serve(ln, true) }

// Start listens on the given addresses ("" skips one) and serves in the
// background. Use Addrs for the bound addresses.
func (s *Server) Start(plainAddr, tlsAddr string) error {
	var lns []net.Listener
	listen := func(addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("server: listen %s: %w", addr, err)
		}
		lns = append(lns, ln)
		return ln, nil
	}
	var plain, secure net.Listener
	var err error
	if plainAddr != "" {
		if plain, err = listen(plainAddr); err != nil {
			return err
		}
	}
	if tlsAddr != "" {
		if secure, err = listen(tlsAddr); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if plain != nil {
		s.plainAddr = plain.Addr()
	}
	if secure != nil {
		s.tlsAddr = secure.Addr()
	}
	s.mu.Unlock()
	run := func(ln net.Listener, implicit bool) {
		if err := s.serve(ln, implicit); err != nil {
			s.log.Error("listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}
	if plain != nil {
		go run(plain, false)
	}
	if secure != nil {
		go run(secure, true)
	}
	return nil
}

// Addrs returns the addresses bound by Start; nil for one not started.
func (s *Server) Addrs() (plain, tls net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plainAddr, s.tlsAddr
}

// CertPool trusts the server's certificate, for clients in tests.
func (s *Server) CertPool() *x509.CertPool { return s.certPool }

// Shutdown closes the listeners and every session, without UPDATE for
// sessions that did not QUIT, and waits for their goroutines or ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("server: shutdown: %w", ctx.Err())
	}
}

func (s *Server) serve(ln net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Temporary (e.g. out of descriptors): retry, slowing down.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		backoff = 0
		if !s.track(c) {
			continue
		}
		go s.handle(c, implicitTLS)
	}
}

// track registers a connection; it reports false (and closes c) once the
// server is shutting down.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
	s.wg.Done()
}

// admit counts a session against MaxConnections.
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxConns > 0 && s.active >= s.maxConns {
		return false
	}
	s.active++
	return true
}

func (s *Server) release() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
}

func (s *Server) handle(raw net.Conn, implicitTLS bool) {
	defer s.untrack(raw)
	id := s.seq.Add(1)
	log := s.log.With("conn", id, "remote", raw.RemoteAddr().String())
	conn := raw
	unauth := s.prof.Timers.Unauthenticated.D()
	if implicitTLS {
		tc := tls.Server(raw, s.tls)
		raw.SetDeadline(time.Now().Add(unauth))
		if err := tc.HandshakeContext(s.ctx); err != nil {
			log.Info("TLS handshake failed", "err", err)
			return
		}
		raw.SetDeadline(time.Time{})
		conn = tc
	}
	if !s.admit() {
		log.Warn("connection refused: limit reached", "max", s.maxConns)
		conn.SetWriteDeadline(time.Now().Add(unauth))
		fmt.Fprintf(conn, "%s\r\n", errLine(s.prof, codeSysTemp, "Too many connections, try again later"))
		return
	}
	defer s.release()
	sess := newSession(s, raw, conn, implicitTLS, id, log)
	sess.serve()
}

// hardenTLS makes cfg (the server's own clone) negotiate TLS 1.2 or later
// with Go's default cipher suites, which leave out RC4, 3DES, CBC-SHA256
// and every suite without forward secrecy: a configuration that asks for
// less is raised, and one whose MaxVersion is below 1.2 is refused.
func hardenTLS(cfg *tls.Config) error {
	if cfg.MaxVersion != 0 && cfg.MaxVersion < tls.VersionTLS12 {
		return fmt.Errorf("MaxVersion %s is below TLS 1.2", tls.VersionName(cfg.MaxVersion))
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.CipherSuites = nil
	return nil
}

// TLSConfig returns a copy of the configuration the server negotiates
// with, for tests and diagnostics.
func (s *Server) TLSConfig() *tls.Config { return s.tls.Clone() }

// loginAllowed applies LOGIN-DELAY (RFC 2449 section 6.5): it reports
// false when user logged in less than the profile's login_delay ago, and
// otherwise records now as the user's last login.
func (s *Server) loginAllowed(user string, now time.Time) bool {
	d := s.prof.LoginDelay.D()
	if d <= 0 {
		return true
	}
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if last, ok := s.lastLogin[user]; ok && now.Sub(last) < d {
		return false
	}
	s.lastLogin[user] = now
	return true
}

// poolOf builds a pool that trusts cfg's certificates.
func poolOf(cfg *tls.Config) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, c := range cfg.Certificates {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			var err error
			if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
		}
		if leaf != nil {
			pool.AddCert(leaf)
		}
	}
	return pool, nil
}

// selfSigned makes a throw-away certificate for local use and tests.
func selfSigned() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "pop3conformance reference server"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
		MinVersion:   tls.VersionTLS12,
	}
	return cfg, pool, nil
}
