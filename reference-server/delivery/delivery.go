// Package delivery accepts mail over SMTP (or LMTP) and stores it with
// maildrop.Store.Deliver, so that tests and real MTAs can deliver to a
// mailbox while POP3 sessions are open (E0003..E0005, C0004). It has no
// authentication: listen on loopback only.
package delivery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// Config configures a Server.
type Config struct {
	Store  *maildrop.Store
	Logger *slog.Logger // nil: discard
	// LMTP speaks RFC 2033 instead of SMTP.
	LMTP bool
	// MaxMessageBytes bounds one message; 0: 32 MiB.
	MaxMessageBytes int64
}

// Server is an SMTP/LMTP listener in front of a store.
type Server struct {
	srv *smtp.Server
}

// New prepares a server; call Serve.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 32 << 20
	}
	s := smtp.NewServer(&backend{cfg: cfg})
	s.Domain = "localhost"
	s.LMTP = cfg.LMTP
	s.MaxMessageBytes = cfg.MaxMessageBytes
	s.MaxRecipients = 100
	return &Server{srv: s}
}

// Serve accepts connections until Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the listener and open sessions.
func (s *Server) Close() error { return s.srv.Close() }

type backend struct{ cfg Config }

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &session{cfg: b.cfg}, nil
}

type session struct {
	cfg   Config
	rcpts []rcpt
}

type rcpt struct{ to, user string }

func (s *session) Reset()        { s.rcpts = nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(string, *smtp.MailOptions) error { return nil }

// Rcpt maps "user@any.domain" (or a bare "user") to a mailbox.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	name := to
	if at := strings.LastIndexByte(to, '@'); at > 0 {
		if _, ok := s.cfg.Store.Lookup(to); !ok {
			name = to[:at]
		}
	}
	acc, ok := s.cfg.Store.Lookup(name)
	if !ok {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox"}
	}
	s.rcpts = append(s.rcpts, rcpt{to: to, user: acc.Name})
	return nil
}

func (s *session) read(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return data, nil
}

func (s *session) deliver(user string, data []byte) error {
	uid, err := s.cfg.Store.Deliver(user, data)
	if errors.Is(err, maildrop.ErrQuota) {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
	}
	if err != nil {
		s.cfg.Logger.Error("delivery failed", "user", user, "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, try again"}
	}
	s.cfg.Logger.Info("delivered", "user", user, "uid", uid, "octets", len(data))
	return nil
}

// Data delivers to every recipient; the first failure is the reply.
func (s *session) Data(r io.Reader) error {
	data, err := s.read(r)
	if err != nil {
		return err
	}
	var first error
	for _, u := range s.rcpts {
		if err := s.deliver(u.user, bytes.Clone(data)); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// LMTPData reports a status per recipient (RFC 2033 §4.2).
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data, err := s.read(r)
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	for _, u := range s.rcpts {
		status.SetStatus(u.to, s.deliver(u.user, bytes.Clone(data)))
	}
	return nil
}
