package server

import (
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	ntlmssp "github.com/Azure/go-ntlmssp"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

func TestCAPA(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		wantPrefix(t, c.cmd("CAPA"), "+OK")
		before := c.lines()
		want := append([]string{}, p.Capabilities...)
		if len(p.SASL) > 0 {
			want = append(want, "SASL "+strings.Join(p.SASL, " "))
		}
		if p.STLS {
			want = append(want, "STLS")
		}
		if p.CAPAOrder == profile.CAPAOrderExchange {
			want = exchangeOrder(want)
		}
		if p.Implementation != "" {
			want = append(want, "IMPLEMENTATION "+p.Implementation)
		}
		if strings.Join(before, "|") != strings.Join(want, "|") {
			t.Fatalf("CAPA before login %q, want %q", before, want)
		}
		c.login("alice", "wonderland")
		wantPrefix(t, c.cmd("CAPA"), "+OK")
		after := c.lines()
		if p.STLS {
			want = want[:0]
			for _, w := range before {
				if w != "STLS" {
					want = append(want, w)
				}
			}
		}
		if strings.Join(after, "|") != strings.Join(want, "|") {
			t.Fatalf("CAPA after login %q, want %q", after, want)
		}
		// Under implicit TLS there is no STLS.
		s := ts.dialTLS(t)
		wantPrefix(t, s.cmd("CAPA"), "+OK")
		if contains(s.lines(), "STLS") {
			t.Fatal("STLS offered under TLS")
		}
		wantPrefix(t, s.cmd("STLS"), "-ERR ")
		s.login("bob", "two words")
		wantPrefix(t, s.cmd("STAT"), "+OK 2 ")
	})
}

// starttls runs STLS and continues the client over TLS.
func (c *client) starttls(ts *testServer) {
	c.t.Helper()
	wantPrefix(c.t, c.cmd("STLS"), "+OK")
	tc := tls.Client(c.conn, ts.clientTLS())
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = newReader(tc)
}

func TestSTLS(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		wantPrefix(t, c.cmd("USER alice"), "+OK")
		c.starttls(ts)
		// The USER before STLS is forgotten.
		wantPrefix(t, c.cmd("PASS wonderland"), "-ERR ")
		wantPrefix(t, c.cmd("STLS"), "-ERR ")
		wantPrefix(t, c.cmd("CAPA"), "+OK")
		if contains(c.lines(), "STLS") {
			t.Fatal("STLS offered after STLS")
		}
		c.login("alice", "wonderland")
		wantPrefix(t, c.cmd("STLS"), "-ERR ")

		// Commands pipelined after STLS in clear text are dropped
		// (STARTTLS injection).
		d := ts.dial(t)
		d.send("STLS\r\nUSER alice\r\n")
		wantPrefix(t, d.line(), "+OK")
		tc := tls.Client(d.conn, ts.clientTLS())
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		d.conn, d.r = tc, newReader(tc)
		wantPrefix(t, d.cmd("PASS wonderland"), "-ERR ")
		wantPrefix(t, d.cmd("NOOP"), "-ERR ")
	})
}

func TestPlaintextNeedsTLS(t *testing.T) {
	p := loadProfile(t, "exchange2010")
	p.PlaintextBeforeTLS = false
	ts := startServer(t, p)
	c := ts.dial(t)
	wantPrefix(t, c.cmd("CAPA"), "+OK")
	capa := c.lines()
	if contains(capa, "USER") || !contains(capa, "SASL NTLM") || !contains(capa, "STLS") {
		t.Fatalf("CAPA before TLS: %q", capa)
	}
	wantPrefix(t, c.cmd("USER alice"), "-ERR ")         // V0010
	wantPrefix(t, c.cmd("USER nobody"), okOrUnknown(p)) // unknown: as usual
	wantPrefix(t, c.cmd("PASS x"), "-ERR ")             //
	wantPrefix(t, c.cmd("AUTH PLAIN "+b64("\x00alice\x00wonderland")), "-ERR ")
	c.starttls(ts)
	wantPrefix(t, c.cmd("CAPA"), "+OK")
	capa = c.lines()
	if !contains(capa, "USER") || !contains(capa, "SASL NTLM PLAIN") {
		t.Fatalf("CAPA under TLS: %q", capa)
	}
	c.login("alice", "wonderland")
}

func TestAuthPlain(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		wantPrefix(t, c.cmd("AUTH"), "+OK")
		if got := c.lines(); strings.Join(got, " ") != strings.Join(p.SASL, " ") {
			t.Fatalf("AUTH list %q", got)
		}
		wantPrefix(t, c.cmd("AUTH CRAM-MD5"), "-ERR ")
		wantPrefix(t, c.cmd("AUTH PLAIN ="), errPrefix(p, "AUTH"))
		wantPrefix(t, c.cmd("AUTH PLAIN not*base64"), "-ERR ")
		wantPrefix(t, c.cmd("AUTH PLAIN "+strings.TrimRight(b64("\x00alice\x00wonderland"), "=")), "-ERR ")
		wantPrefix(t, c.cmd("AUTH PLAIN "+b64("\x00alice\x00wrong")), errPrefix(p, "AUTH"))
		wantPrefix(t, c.cmd("AUTH PLAIN "+b64("bob\x00alice\x00wonderland")), "-ERR ")
		// Continuation: "+ " exactly, then "*" cancels.
		if got := c.cmd("AUTH PLAIN"); got != "+ " {
			t.Fatalf("empty challenge %q", got)
		}
		wantPrefix(t, c.cmd("*"), "-ERR ")
		if got := c.cmd("auth plain"); got != "+ " {
			t.Fatalf("empty challenge %q", got)
		}
		wantPrefix(t, c.cmd("AGFsaWNl AHdvbmRlcmxhbmQ="), "-ERR ")
		// A continuation line may be longer than a command line.
		if got := c.cmd("AUTH PLAIN"); got != "+ " {
			t.Fatalf("empty challenge %q", got)
		}
		long := b64("\x00alice\x00" + strings.Repeat("p", 2*p.MaxCommandOctets))
		wantPrefix(t, c.cmd(long), errPrefix(p, "AUTH"))
		if got := c.cmd("AUTH PLAIN"); got != "+ " {
			t.Fatalf("empty challenge %q", got)
		}
		wantPrefix(t, c.cmd(b64("alice\x00alice\x00wonderland")), "+OK")
		wantPrefix(t, c.cmd("STAT"), "+OK 6 ")
		wantPrefix(t, c.cmd("AUTH PLAIN"), "-ERR ")

		d := ts.dial(t)
		wantPrefix(t, d.cmd("AUTH PLAIN "+b64("\x00bob\x00two words")), "+OK")
	})
}

// ntlmLogin runs AUTH NTLM with go-ntlmssp as the client.
func ntlmLogin(t *testing.T, c *client, user, password string, initial bool) string {
	t.Helper()
	neg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		t.Fatal(err)
	}
	var chal string
	// Exchange 2007's 47-octet limit leaves no room for an initial
	// response: a client has to use the continuation.
	if initial && len("AUTH NTLM ")+base64.StdEncoding.EncodedLen(len(neg))+2 > c.maxCommand {
		initial = false
	}
	if initial {
		chal = c.cmd("AUTH NTLM " + base64.StdEncoding.EncodeToString(neg))
	} else {
		if got := c.cmd("AUTH NTLM"); got != "+ " {
			t.Fatalf("AUTH NTLM: %q, want \"+ \"", got)
		}
		chal = c.cmd(base64.StdEncoding.EncodeToString(neg))
	}
	raw, ok := strings.CutPrefix(chal, "+ ")
	if !ok {
		t.Fatalf("challenge line %q", chal)
	}
	cm, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatal(err)
	}
	am, err := ntlmssp.NewAuthenticateMessage(cm, user, password, nil)
	if err != nil {
		t.Fatalf("client rejects the CHALLENGE: %v", err)
	}
	return c.cmd(base64.StdEncoding.EncodeToString(am))
}

func TestAuthNTLM(t *testing.T) {
	forEachProfile(t, func(t *testing.T, p *profile.Profile) {
		ts := startServer(t, p)
		c := ts.dial(t)
		if !p.HasCapability("SASL") || !contains(p.SASL, "NTLM") {
			wantPrefix(t, c.cmd("AUTH NTLM"), "-ERR ")
			return
		}
		wantPrefix(t, ntlmLogin(t, c, "alice", "wrong", false), errPrefix(p, "AUTH"))
		wantPrefix(t, ntlmLogin(t, c, "nobody", "wonderland", true), errPrefix(p, "AUTH"))
		// Corrupt blob.
		if got := c.cmd("AUTH NTLM"); got != "+ " {
			t.Fatalf("AUTH NTLM: %q", got)
		}
		wantPrefix(t, c.cmd(b64("not an NTLM message")), "-ERR ")
		if got := c.cmd("AUTH NTLM"); got != "+ " {
			t.Fatalf("AUTH NTLM: %q", got)
		}
		wantPrefix(t, c.cmd("*"), "-ERR ")
		wantPrefix(t, ntlmLogin(t, c, "alice", "wonderland", false), "+OK")
		wantPrefix(t, c.cmd("STAT"), "+OK 6 ")

		d := ts.dial(t)
		wantPrefix(t, ntlmLogin(t, d, `POP3CONF\bob`, "two words", true), "+OK")
	})
}
