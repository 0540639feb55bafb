package server

import (
	"github.com/pop3conformance/pop3conformance/model/profile"

	"encoding/base64"
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
)

// maxSASLLine bounds a client's SASL response line, CRLF included. It is
// separate from max_command_octets: NTLM and PLAIN blobs are data, not
// commands, and an Exchange 2007 limit of 47 octets would stop them.
const maxSASLLine = 16 << 10

// mechanism builds a SASL server for one AUTH exchange; user receives the
// authenticated name.
type mechanism func(s *session, user *string) sasl.Server

// saslMechanisms are the mechanisms this server implements; a profile
// chooses which to offer.
var saslMechanisms = map[string]mechanism{
	sasl.Plain: newPlainServer,
	"NTLM":     newNTLMMechanism,
}

var errAuthz = errors.New("authorization identity differs from authentication identity")

func newPlainServer(s *session, user *string) sasl.Server {
	return sasl.NewPlainServer(func(authz, authc, password string) error {
		// RFC 5034 section 4: identities are compared after SASLprep.
		authc, err := saslPrep(authc)
		if err != nil {
			return err
		}
		if authz != "" {
			if authz, err = saslPrep(authz); err != nil || authz == "" {
				// An identity that prepares to nothing fails (RFC 5034).
				return errAuthz
			}
			// RFC 4616 §2: acting as another user is not supported.
			if !strings.EqualFold(authz, authc) {
				return errAuthz
			}
		}
		if !s.srv.store.CheckPassword(authc, password) {
			return errBadCredentials
		}
		*user = authc
		return nil
	})
}

var errBadCredentials = errors.New("bad credentials")

// cmdAuth runs RFC 5034 AUTH. A bare AUTH lists the mechanisms, one per
// line, as the Windows POP3 service and RFC 1734 clients expect.
func (s *session) cmdAuth(cmd command) {
	offered := s.mechanisms()
	if len(cmd.Args) == 0 {
		s.ok("Supported SASL mechanisms follow")
		for _, m := range offered {
			s.writeLine(m)
		}
		s.writeLine(".")
		return
	}
	if len(cmd.Args) > 2 {
		s.argCount("AUTH takes a mechanism and an optional initial response")
		return
	}
	mech := strings.ToUpper(cmd.Args[0])
	if !slices.Contains(offered, mech) {
		if mech == sasl.Plain && slices.Contains(s.prof.SASL, mech) {
			// RFC 3206 section 5: [AUTH] covers an attempt that breaks
			// policy, here a clear-text password before TLS.
			s.err(codeAuth, profile.Text(s.prof.Replies.PlaintextRefused, "PLAIN is not permitted on an unencrypted connection; use STLS first"))
			return
		}
		s.err("", profile.Text(s.prof.Replies.BadArgument, "Unsupported SASL mechanism"))
		return
	}
	var resp []byte // nil: no initial response
	if len(cmd.Args) == 2 {
		if cmd.Args[1] == "=" {
			resp = []byte{} // RFC 5034 §4: "=" is an empty initial response
		} else {
			var err error
			if resp, err = decodeBase64(cmd.Args[1]); err != nil {
				s.err("", "Invalid base64 in the initial response")
				return
			}
		}
	}
	var user string
	srv := saslMechanisms[mech](s, &user)
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			// The error says why without quoting the payload.
			s.log.Info("login failed", "mechanism", mech, "reason", err.Error())
			s.loginFailed(profile.Text(s.prof.Replies.AuthFailed, "Authentication failed"))
			return
		}
		if done {
			s.login(user, mech)
			return
		}
		// An empty challenge is exactly "+ " (RFC 5034 §4).
		s.writeLine("+ " + base64.StdEncoding.EncodeToString(challenge))
		if err := s.bw.Flush(); err != nil {
			s.done = true
			return
		}
		line, err := s.readLine(maxSASLLine)
		switch {
		case errors.Is(err, errLineTooLong):
			s.err("", "SASL response too long")
			return
		case isTimeout(err):
			s.autologout()
			s.done = true
			return
		case err != nil:
			s.done = true
			return
		}
		if string(line) == "*" {
			s.err("", "Authentication cancelled")
			return
		}
		if resp, err = decodeBase64(string(line)); err != nil {
			s.err("", "Invalid base64 in the SASL response")
			return
		}
	}
}

// decodeBase64 is strict RFC 4648 base64: padding required and in place,
// no spaces, no line breaks (which encoding/base64 would skip).
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	return b, nil
}
