package server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// The server negotiates TLS 1.2 or later with Go's default suites, whatever
// configuration it is given.
func TestTLSMinimum(t *testing.T) {
	p := loadProfile(t, "exchange2010")
	base := startServer(t, p)
	user := base.TLSConfig() // the self-signed one, as a user would give it
	user.MinVersion = tls.VersionTLS10
	user.CipherSuites = []uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	for name, cfg := range map[string]*tls.Config{"self-signed": nil, "user-supplied": user} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, p, func(c *Config, _ *maildrop.Options) { c.TLS = cfg })
			got := ts.TLSConfig()
			if got.MinVersion < tls.VersionTLS12 || got.CipherSuites != nil {
				t.Fatalf("server TLS config: min %x, suites %v", got.MinVersion, got.CipherSuites)
			}
			old := ts.clientTLS()
			old.MaxVersion = tls.VersionTLS11
			old.MinVersion = tls.VersionTLS10
			if c, err := tls.Dial("tcp", ts.tls, old); err == nil {
				c.Close()
				t.Fatal("a TLS 1.1 client was accepted")
			}
			c := ts.dialTLS(t)
			if v := c.conn.(*tls.Conn).ConnectionState().Version; v < tls.VersionTLS12 {
				t.Fatalf("negotiated %x", v)
			}
		})
	}
	bad := base.TLSConfig()
	bad.MaxVersion = tls.VersionTLS11
	store, _ := maildrop.Open(t.TempDir(), maildrop.Options{})
	if _, err := New(Config{Profile: p, Store: store, TLS: bad}); err == nil {
		t.Fatal("New accepted a configuration capped below TLS 1.2")
	}
}

// plaintext_before_tls: false refuses USER (V0010: -ERR, no [AUTH]), PASS
// and AUTH PLAIN before TLS with [AUTH].
func TestRequireTLSRefusals(t *testing.T) {
	p := withCodes(loadProfile(t, "exchange2010"))
	p.PlaintextBeforeTLS = false
	ts := startServer(t, p)
	c := ts.dial(t)
	if r := c.cmd("USER alice"); !strings.HasPrefix(r, "-ERR ") || strings.Contains(r, "[AUTH]") {
		t.Fatalf("USER before TLS: %q", r)
	}
	wantPrefix(t, c.cmd("USER nobody"), "+OK")
	wantPrefix(t, c.cmd("PASS wonderland"), "-ERR [AUTH] ")
	wantPrefix(t, c.cmd("AUTH PLAIN "+b64("\x00alice\x00wonderland")), "-ERR [AUTH] ")
	wantPrefix(t, c.cmd("AUTH PLAIN"), "-ERR [AUTH] ")
}

// failed_login_delay holds the answer to a failed PASS, APOP or AUTH; a
// good login is not delayed; Shutdown cuts the wait short.
func TestFailedLoginDelay(t *testing.T) {
	const delay = 400 * time.Millisecond
	p := loadProfile(t, "rfc1939")
	p.FailedLoginDelay = profile.Duration(delay)
	ts := startServer(t, p)
	c := ts.dial(t)
	stamp := c.greeting[strings.LastIndex(c.greeting, "<"):]
	for _, try := range [][]string{
		{"USER alice", "PASS wrong"},
		{"APOP alice " + strings.Repeat("0", 32)},
		{"AUTH PLAIN " + b64("\x00alice\x00wrong")},
	} {
		for _, line := range try[:len(try)-1] {
			wantPrefix(t, c.cmd(line), "+OK")
		}
		began := time.Now()
		wantPrefix(t, c.cmd(try[len(try)-1]), "-ERR [AUTH] ")
		if took := time.Since(began); took < delay {
			t.Errorf("%s failed after %v, want at least %v", strings.Fields(try[0])[0], took, delay)
		}
	}
	sum := md5.Sum([]byte(stamp + "apop secret"))
	began := time.Now()
	wantPrefix(t, c.cmd("APOP erin "+hex.EncodeToString(sum[:])), "+OK")
	if took := time.Since(began); took >= delay {
		t.Errorf("a good login took %v", took)
	}
	d := ts.dial(t)
	wantPrefix(t, d.cmd("USER bob"), "+OK")
	d.send("PASS wrong\r\n")
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), delay/2)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown waited for a login delay: %v", err)
	}
}

// LOGIN-DELAY: advertised in both states, a second login within the delay
// gets -ERR [LOGIN-DELAY] whatever the mechanism, a later one works.
func TestLoginDelay(t *testing.T) {
	p := withCodes(loadProfile(t, "exchange2010"))
	p.LoginDelay = profile.Duration(time.Second)
	ts := startServer(t, p)
	c := ts.dial(t)
	wantPrefix(t, c.cmd("CAPA"), "+OK")
	if capa := c.lines(); !contains(capa, "LOGIN-DELAY 1") {
		t.Fatalf("CAPA before login: %q", capa)
	}
	c.login("alice", "wonderland")
	wantPrefix(t, c.cmd("CAPA"), "+OK")
	if capa := c.lines(); !contains(capa, "LOGIN-DELAY 1") {
		t.Fatalf("CAPA after login: %q", capa)
	}
	d := ts.dial(t)
	wantPrefix(t, d.cmd("USER alice"), "+OK")
	wantPrefix(t, d.cmd("PASS wonderland"), "-ERR [LOGIN-DELAY] ")
	wantPrefix(t, d.cmd("AUTH PLAIN "+b64("\x00alice\x00wonderland")), "-ERR [LOGIN-DELAY] ")
	// Other mailboxes are not held up.
	e := ts.dial(t)
	e.login("bob", "two words")
	time.Sleep(time.Second + 50*time.Millisecond)
	d.login("alice", "wonderland")
}

// Hashed storage (what the reference-server command uses): PASS, PLAIN and
// NTLM still work, with no clear password in the store.
func TestHashedStoreLogins(t *testing.T) {
	p := withCodes(loadProfile(t, "exchange2010"))
	ts := startServer(t, p, func(_ *Config, o *maildrop.Options) {
		o.Credentials = &maildrop.Credentials{Hash: true, NTHash: true, Cost: 4}
	})
	if _, ok := ts.store.Secret("alice"); ok {
		t.Fatal("clear password kept")
	}
	c := ts.dial(t)
	c.login("alice", "wonderland")
	d := ts.dial(t)
	wantPrefix(t, d.cmd("AUTH PLAIN "+b64("\x00bob\x00two words")), "+OK")
	e := ts.dial(t)
	wantPrefix(t, ntlmLogin(t, e, "carol", "looking glass", true), "+OK")
	f := ts.dial(t)
	wantPrefix(t, ntlmLogin(t, f, "carol", "wrong", true), "-ERR [AUTH] ")
}

// syncBuffer is a log sink shared by sessions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Passwords and SASL payloads never reach the log, even at debug level
// and even when a client sends a password where a command belongs.
func TestNoSecretsInLog(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var secrets []string
	for _, name := range bundled {
		t.Run(name, func(t *testing.T) {
			p := loadProfile(t, name)
			ts := startServer(t, p, func(c *Config, o *maildrop.Options) { c.Logger = log; o.Logger = log })
			c := ts.dial(t)
			c.cmd("USER alice")
			c.cmd("PASS wonderland-wrong1")
			c.cmd("wonderland-bare2")
			c.cmd("pass wonderland-lower3")
			ok := b64("\x00alice\x00wonderland")
			bad := b64("\x00alice\x00wonderland-plain4")
			cont := b64("alice\x00alice\x00wonderland-cont5")
			secrets = append(secrets, "wonderland", ok, bad, cont, "two words")
			c.cmd("AUTH PLAIN " + bad)
			if r := c.cmd("AUTH PLAIN"); r == "+ " {
				c.cmd(cont)
			}
			if strings.Contains(c.greeting, "<") {
				stamp := c.greeting[strings.LastIndex(c.greeting, "<"):]
				sum := md5.Sum([]byte(stamp + "wonderland"))
				digest := hex.EncodeToString(sum[:])
				secrets = append(secrets, digest)
				c.cmd("APOP alice " + digest)
			} else {
				c.cmd("AUTH PLAIN " + ok)
			}
			d := ts.dial(t)
			d.login("bob", "two words")
			if contains(p.SASL, "NTLM") {
				e := ts.dial(t)
				ntlmLogin(t, e, "carol", "looking glass", true)
				secrets = append(secrets, "looking glass", "looking", base64.StdEncoding.EncodeToString([]byte("looking glass")))
			}
		})
	}
	out := buf.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "login") {
		t.Fatalf("the log did not capture the sessions:\n%s", out)
	}
	for _, s := range secrets {
		for _, form := range []string{s, strings.ToUpper(s), strings.ToLower(s)} {
			if strings.Contains(out, form) {
				t.Errorf("the log contains %q", form)
			}
		}
	}
	if strings.Contains(strings.ToLower(out), "wonderland") {
		t.Errorf("the log mentions a password:\n%s", out)
	}
}
