package observe

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// mailutilsLike is a fake POP3 server that behaves as GNU Mailutils pop3d
// 3.15 does where the probe once measured it wrong:
//
//   - its greeting carries an APOP timestamp, yet APOP with the account's
//     password is refused (Mailutils takes APOP secrets from an APOP
//     database only);
//   - after a USER answered +OK it takes only PASS or QUIT ("-ERR Invalid
//     command" to anything else, a second USER too);
//   - it reads lines of at most 511 octets: of a longer line it sends the
//     first 511 octets back, then the reply to them on the same line, and
//     drops the rest;
//   - its messages are the fixture's with an X-UIDL header line added, and
//     LIST reports the sizes it then sends.
type mailutilsLike struct {
	ln   net.Listener
	msgs [][]byte
}

const mailutilsLineMax = 511

func startMailutilsLike(t *testing.T) *mailutilsLike {
	t.Helper()
	fixture, err := harness.FixtureMessages("alice")
	if err != nil {
		t.Fatal(err)
	}
	s := &mailutilsLike{}
	for i, m := range fixture {
		s.msgs = append(s.msgs, append([]byte(fmt.Sprintf("X-UIDL: fake%032d\r\n", i+1)), m.Data...))
	}
	s.ln = serveFake(t, s.serve)
	return s
}

// bundledRemote starts the bundled server with profile prof and returns
// it, one of its accounts and its plain port: a test then measures it as
// a remote host.
func bundledRemote(t *testing.T, prof string) (*harness.Target, harness.Account, int) {
	t.Helper()
	ctx := context.Background()
	srv, err := harness.Open(ctx, harness.Config{TLS: harness.TLSNone, Profile: prof})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	a, err := srv.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.PlainAddr())
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return srv, a, p
}

// serveFake accepts loopback connections for serve until the test ends.
func serveFake(t *testing.T, serve func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln
}

func (s *mailutilsLike) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *mailutilsLike) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	send := func(lines ...string) {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		w.Flush()
	}
	send("+OK POP3 Ready <4242.1795642052@fake>")
	const (
		authorization = iota
		userGiven
		transaction
	)
	state, user := authorization, ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if len(line) > mailutilsLineMax {
			w.WriteString(line[:mailutilsLineMax])
			line = line[:mailutilsLineMax]
		}
		line = strings.TrimRight(line, "\r\n")
		kw, arg, _ := strings.Cut(line, " ")
		kw = strings.ToUpper(kw)
		switch {
		case kw == "QUIT":
			send("+OK")
			return
		case state == authorization && kw == "CAPA", state == transaction && kw == "CAPA":
			send("+OK Capability list follows", "TOP", "UIDL", "USER", ".")
		case state == authorization && kw == "USER":
			if arg == "" {
				send("-ERR Invalid arguments")
				break
			}
			state, user = userGiven, arg
			send("+OK")
		case state == authorization && kw == "APOP":
			send("-ERR [AUTH] Bad login")
		case state == userGiven && kw == "PASS":
			if user == "alice" && arg == "wonderland" {
				state = transaction
				send("+OK opened mailbox for alice")
			} else {
				state = authorization
				send("-ERR [AUTH] Bad login")
			}
		case state == transaction && kw == "STAT":
			total := 0
			for _, m := range s.msgs {
				total += len(m)
			}
			send(fmt.Sprintf("+OK %d %d", len(s.msgs), total))
		case state == transaction && kw == "LIST" && arg == "":
			out := []string{"+OK"}
			for i, m := range s.msgs {
				out = append(out, fmt.Sprintf("%d %d", i+1, len(m)))
			}
			send(append(out, ".")...)
		case state == transaction && kw == "LIST":
			// pop3d reads the number with strtoul: leading zeros are fine.
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > len(s.msgs) {
				send("-ERR No such message")
				break
			}
			send(fmt.Sprintf("+OK %d %d", n, len(s.msgs[n-1])))
		case state == transaction && kw == "UIDL" && arg == "":
			out := []string{"+OK"}
			for i := range s.msgs {
				out = append(out, fmt.Sprintf("%d fake%032d", i+1, i+1))
			}
			send(append(out, ".")...)
		case state == transaction && kw == "RETR":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 1 || n > len(s.msgs) {
				send("-ERR No such message")
				break
			}
			out := []string{"+OK"}
			for _, l := range strings.SplitAfter(string(s.msgs[n-1]), "\r\n") {
				if l == "" {
					continue
				}
				if strings.HasPrefix(l, ".") {
					l = "." + l
				}
				out = append(out, strings.TrimSuffix(l, "\r\n"))
			}
			send(append(out, ".")...)
		case state == transaction && kw == "NOOP":
			send("+OK")
		default:
			send("-ERR Invalid command")
		}
	}
}

// TestMailutilsLike measures the fake Mailutils as a remote host: APOP
// offered but refused, the 511-octet limit behind the echo and the USER
// rule, and sizes that are exact though the messages are not the
// fixture's.
func TestMailutilsLike(t *testing.T) {
	srv := startMailutilsLike(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := harness.Config{Host: "127.0.0.1", Port: srv.port(), TLS: harness.TLSNone, User: "alice", Password: "wonderland",
		MailboxFixture: "alice", Profile: "rfc1939"}
	got, err := Run(ctx, Options{Config: cfg, Target: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got.Observation.Errors {
		t.Errorf("measurement error: %s", e)
	}
	want := map[string]any{
		"apop_timestamp": true, "apop_login": false, "apop": false, "apop_reply": "-ERR [AUTH] Bad login",
		"max_command_octets": 511, "max_command_octets_bound": "exact",
		"max_command_octets_transaction": 511, "max_command_octets_transaction_bound": "exact",
		"max_argument_chars": 0, "exact_sizes": true, "message_count": 6,
		"unknown_user_reply": "ok",
	}
	for k, w := range want {
		if v, ok := got.Params[k]; !ok || report.ShowValue(v) != report.ShowValue(w) {
			t.Errorf("%s = %v, want %v; method %q, not measured %q", k, v, w, got.Observation.Methods[k], got.Observation.NotMeasured[k])
		}
	}
	if _, ok := got.Params["storage_block_octets"]; ok {
		t.Errorf("storage_block_octets measured for exact sizes: %v", got.Params["storage_block_octets"])
	}
	if m := got.Observation.Methods["max_command_octets"]; !strings.Contains(m, "a 512-octet line: the server sent its first 511 octets back, then \"-ERR Invalid command\"") {
		t.Errorf("max_command_octets method %q does not describe the echo", m)
	}
	if m := got.Observation.Methods["exact_sizes"]; !strings.Contains(m, "listed 305, sent 305") {
		t.Errorf("exact_sizes method %q", m)
	}
	if got.Observation.Connections > DefaultMaxConnections {
		t.Errorf("%d connections", got.Observation.Connections)
	}
	// The suggested profile, fed back, expects APOP to be refused.
	p, err := profile.Parse(got.SuggestedProfile)
	if err != nil {
		t.Fatalf("suggested profile: %v\n%s", err, got.SuggestedProfile)
	}
	if p.APOP || p.MaxCommandOctets != 511 || !p.ExactSizes {
		t.Errorf("suggested apop %v, max_command_octets %d, exact_sizes %v:\n%s", p.APOP, p.MaxCommandOctets, p.ExactSizes, got.SuggestedProfile)
	}
	// The password shows nowhere, the APOP digest's transcript included.
	for k, ev := range got.Observation.Evidence {
		if strings.Contains(ev, "wonderland") {
			t.Errorf("evidence %s holds the password:\n%s", k, ev)
		}
	}
	// Readonly: the session that retrieved a message did not QUIT.
	if ev := got.Observation.Evidence["exact_sizes"]; !strings.Contains(ev, "RETR") || strings.Contains(ev, "QUIT") {
		t.Errorf("exact_sizes evidence:\n%s", ev)
	}
}

// TestAPOPOfferedButRefused audits the bundled rfc1939 server as a remote
// host through alice, a mailbox that logs in with USER/PASS only (RFC
// 1939 section 13): the greeting offers APOP, APOP for alice is refused.
func TestAPOPOfferedButRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reference server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, a, p := bundledRemote(t, "rfc1939")
	cfg := harness.Config{Host: "127.0.0.1", Port: p, TLS: harness.TLSNone, User: a.User, Password: a.Password, MailboxFixture: "alice", Profile: "rfc1939"}
	got, err := Run(ctx, Options{Config: cfg, Target: srv.PlainAddr()})
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range map[string]any{"apop_timestamp": true, "apop_login": false, "apop": false, "exact_sizes": true} {
		if v, ok := got.Params[k]; !ok || v != w {
			t.Errorf("%s = %v, want %v; method %q, not measured %q", k, v, w, got.Observation.Methods[k], got.Observation.NotMeasured[k])
		}
	}
	if r, _ := got.Params["apop_reply"].(string); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("apop_reply %q", r)
	}
}

func TestEchoed(t *testing.T) {
	line := "USER " + strings.Repeat("x", 600)
	tests := []struct {
		raw  string
		want int
	}{
		{line[:511] + "+OK\r\n", 511},
		{line[:510] + "\r+OK\r\n", 510},
		{"+OK\r\n", 0},
		{"-ERR USER xxxxxxxx too long\r\n", 0},
		{"USER\r\n", 0},
		{line + "\r\n", len(line) + 2},
	}
	for _, tt := range tests {
		r := harness.Reply{Raw: []byte(tt.raw)}
		r.Status, r.Text, _ = strings.Cut(strings.TrimRight(tt.raw, "\r\n"), " ")
		if got := echoed(r, line); got != tt.want {
			t.Errorf("echoed(%.20q...) = %d, want %d", tt.raw, got, tt.want)
		}
	}
}
