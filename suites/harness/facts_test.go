package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// fakeServer is a small POP3 server whose quirks the facts must reveal.
type fakeServer struct {
	noCapa bool
	// bareErr answers every failure with "-ERR" alone.
	bareErr bool
	// closeAfter closes after that many -ERR replies in a state (0:
	// never); the count starts again at login.
	closeAfter int
	// refuseAfter, like Dovecot, answers that many -ERR replies in a
	// state, then refuses whatever comes next with a last -ERR and
	// closes (0: never).
	refuseAfter int
	// closeOnFailedPass closes right after refusing PASS.
	closeOnFailedPass bool
	// unknownUserErr refuses USER for a name it does not hold.
	unknownUserErr bool
	// messages is the maildrop of the one account; pad is added to every
	// size LIST reports.
	messages [][]byte
	pad      int64

	ln net.Listener
	wg sync.WaitGroup
}

const fakeUser, fakePass = "alice", "wonderland"

func (f *fakeServer) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer nc.Close()
				f.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return ln.Addr().String()
}

func (f *fakeServer) serve(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufio.NewReader(nc), bufio.NewWriter(nc)
	out := func(s string) { w.WriteString(s + "\r\n") }
	var user string
	tx, errs := false, 0
	// fail answers -ERR and reports whether the session must end.
	fail := func(text string) bool {
		if f.bareErr {
			out("-ERR")
		} else {
			out("-ERR " + text)
		}
		errs++
		return f.closeAfter > 0 && errs >= f.closeAfter
	}
	out("+OK fake ready")
	for {
		if w.Flush() != nil {
			return
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		kw, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		end := false
		if f.refuseAfter > 0 && errs >= f.refuseAfter {
			kw = "" // any command: the last -ERR, then the close
			end = true
		}
		switch kw = strings.ToUpper(kw); {
		case kw == "QUIT":
			out("+OK bye")
			end = true
		case kw == "CAPA" && !f.noCapa:
			out("+OK")
			out("USER")
			out(".")
		case kw == "USER" && !tx:
			if f.unknownUserErr && arg != fakeUser {
				end = fail("no such user")
				break
			}
			user = arg
			out("+OK")
		case kw == "PASS" && !tx:
			if user != fakeUser || arg != fakePass {
				end = fail("login failed") || f.closeOnFailedPass
				break
			}
			tx, errs = true, 0
			out("+OK logged in")
		case kw == "NOOP" && tx:
			out("+OK")
		case kw == "STAT" && tx:
			var sum int64
			for _, m := range f.messages {
				sum += int64(len(m)) + f.pad
			}
			out(fmt.Sprintf("+OK %d %d", len(f.messages), sum))
		case kw == "LIST" && tx && arg == "":
			out("+OK")
			for i, m := range f.messages {
				out(fmt.Sprintf("%d %d", i+1, int64(len(m))+f.pad))
			}
			out(".")
		case kw == "RETR" && tx:
			n, _ := strconv.Atoi(arg)
			if n < 1 || n > len(f.messages) {
				end = fail("no such message")
				break
			}
			out("+OK")
			for _, l := range strings.SplitAfter(string(f.messages[n-1]), "\r\n") {
				if l == "" {
					continue
				}
				if strings.HasPrefix(l, ".") {
					l = "." + l
				}
				w.WriteString(l)
			}
			out(".")
		default:
			end = fail("unknown command") || end
		}
		if end {
			w.Flush()
			return
		}
	}
}

func alice(t *testing.T) [][]byte {
	t.Helper()
	msgs, err := FixtureMessages("alice")
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Data
	}
	return out
}

// remoteTarget opens a target for the fake server as a remote host.
func remoteTarget(t *testing.T, addr string) *Target {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cfg := Config{Host: host, Port: p, TLS: TLSNone, User: fakeUser, Password: fakePass, Profile: "rfc1939", MailboxFixture: "alice"}
	tg, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func TestMeasureFacts(t *testing.T) {
	full := alice(t)
	open := func(n int) ErrorLimit { return ErrorLimit{Measured: true, Replies: n, Cap: ErrorCap} }
	closes := func(n int) ErrorLimit { return ErrorLimit{Measured: true, Closes: true, Replies: n, Cap: ErrorCap} }
	tests := []struct {
		name   string
		server *fakeServer
		want   Facts
		// fixture checks the fixture result.
		sizes, reason string
		// conns is how many connections the measurement opens: the
		// session that read the maildrop counts the errors in
		// TRANSACTION when all its replies were positive.
		conns int
	}{
		{
			name:   "well behaved",
			server: &fakeServer{messages: full},
			want:   Facts{CapaAuthorization: Yes, CapaTransaction: Yes, NoopTransaction: Yes, Authorization: open(ErrorCap), Transaction: open(ErrorCap), FailedPassCloses: No},
			sizes:  SizesExact,
			conns:  4,
		},
		{
			name:   "no CAPA, bare -ERR",
			server: &fakeServer{noCapa: true, bareErr: true, messages: full},
			want:   Facts{CapaAuthorization: No, CapaTransaction: No, NoopTransaction: Yes, Authorization: open(ErrorCap), Transaction: open(ErrorCap), FailedPassCloses: No},
			sizes:  SizesExact,
			conns:  5,
		},
		{
			name:   "closes after 3 errors, no CAPA",
			server: &fakeServer{noCapa: true, bareErr: true, closeAfter: 3, messages: full},
			want:   Facts{CapaAuthorization: No, CapaTransaction: No, NoopTransaction: Yes, Authorization: closes(3), Transaction: closes(3), FailedPassCloses: No},
			sizes:  SizesExact,
			conns:  7,
		},
		{
			name:   "refuses any command after 3 errors",
			server: &fakeServer{refuseAfter: 3, messages: full},
			want:   Facts{CapaAuthorization: Yes, CapaTransaction: Yes, NoopTransaction: Yes, Authorization: closes(3), Transaction: closes(3), FailedPassCloses: No},
			sizes:  SizesExact,
			conns:  6,
		},
		{
			name:   "closes after a failed PASS",
			server: &fakeServer{closeOnFailedPass: true, messages: full},
			want:   Facts{CapaAuthorization: Yes, CapaTransaction: Yes, NoopTransaction: Yes, Authorization: open(ErrorCap), Transaction: open(ErrorCap), FailedPassCloses: Yes},
			sizes:  SizesExact,
			conns:  4,
		},
		{
			name:   "refuses USER for an unknown name",
			server: &fakeServer{unknownUserErr: true, messages: full},
			want:   Facts{CapaAuthorization: Yes, CapaTransaction: Yes, NoopTransaction: Yes, Authorization: open(ErrorCap), Transaction: open(ErrorCap), FailedPassCloses: Unknown},
			sizes:  SizesExact,
			conns:  4,
		},
		{
			name:   "sizes neither exact nor the profile's",
			server: &fakeServer{messages: full, pad: 7},
			want:   Facts{CapaAuthorization: Yes, CapaTransaction: Yes, NoopTransaction: Yes, Authorization: open(ErrorCap), Transaction: open(ErrorCap), FailedPassCloses: No},
			sizes:  SizesOther,
			conns:  4,
		},
		{
			name:   "maildrop consumed by a mutating run",
			server: &fakeServer{messages: full[:1]},
			want:   Facts{CapaAuthorization: Yes, CapaTransaction: Yes, NoopTransaction: Yes, Authorization: open(ErrorCap), Transaction: open(ErrorCap), FailedPassCloses: No},
			reason: "STAT says 1 message /",
			conns:  4,
		},
		{
			name:   "same count, other mail",
			server: &fakeServer{messages: append([][]byte{full[1]}, full[1:]...), pad: 1},
			want:   Facts{CapaAuthorization: Yes, CapaTransaction: Yes, NoopTransaction: Yes, Authorization: open(ErrorCap), Transaction: open(ErrorCap), FailedPassCloses: No},
			reason: "message 1 is not the fixture's",
			conns:  4,
		},
	}
	// One connection at a time, or lanes at once: the same facts.
	for _, sessions := range []int{1, 2, 3} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%d", tc.name, sessions), func(t *testing.T) {
				tg := remoteTarget(t, tc.server.start(t))
				tg.Config.Sessions = sessions
				checkMeasuredFacts(t, tg, tc.want, tc.sizes, tc.reason)
				if got := tg.Recorder().Traffic().Connections; got != tc.conns {
					t.Errorf("%d connections, want %d", got, tc.conns)
				}
			})
		}
	}
}

func checkMeasuredFacts(t *testing.T, tg *Target, want Facts, sizes, reason string) {
	if err := tg.MeasureFacts(context.Background()); err != nil {
		t.Fatalf("MeasureFacts: %v", err)
	}
	got := tg.Facts()
	if got.CapaAuthorization != want.CapaAuthorization || got.CapaTransaction != want.CapaTransaction || got.NoopTransaction != want.NoopTransaction {
		t.Errorf("CAPA/NOOP: got %s/%s/%s, want %s/%s/%s", got.CapaAuthorization, got.CapaTransaction, got.NoopTransaction, want.CapaAuthorization, want.CapaTransaction, want.NoopTransaction)
	}
	if got.Authorization != want.Authorization || got.Transaction != want.Transaction {
		t.Errorf("error limits: got %+v / %+v, want %+v / %+v", got.Authorization, got.Transaction, want.Authorization, want.Transaction)
	}
	// The list before login is kept for the specs when CAPA answered +OK
	// there (the fake lists USER alone).
	var lines []string
	if want.CapaAuthorization == Yes {
		lines = []string{"USER"}
	}
	if !slices.Equal(got.CapaLines, lines) {
		t.Errorf("CAPA lines before login: %q, want %q", got.CapaLines, lines)
	}
	if got.FailedPassCloses != want.FailedPassCloses {
		t.Errorf("failed PASS closes: got %s (%s), want %s", got.FailedPassCloses, got.FailedPassNote, want.FailedPassCloses)
	}
	fx := got.Fixture
	if !fx.Checked || fx.Name != "alice" {
		t.Fatalf("fixture not checked: %+v", fx)
	}
	if reason == "" && (!fx.Match || fx.Sizes != sizes) {
		t.Errorf("fixture: got match %v sizes %q (%s), want match with sizes %q", fx.Match, fx.Sizes, fx.Reason, sizes)
	}
	if reason != "" && (fx.Match || !strings.Contains(fx.Reason, reason)) {
		t.Errorf("fixture: got match %v reason %q, want a mismatch saying %q", fx.Match, fx.Reason, reason)
	}
	if !strings.Contains(got.Transcript, "C: XYZW") {
		t.Errorf("the measuring connections' transcript is missing:\n%s", got.Transcript)
	}
	if strings.Contains(got.Transcript, fakePass) {
		t.Errorf("the transcript holds the password")
	}
	if tg.Recorder().Flush() != "" {
		t.Errorf("measuring connections leaked into the spec recorder")
	}
}

// TestFixtureLostAccount checks that a measured mismatch withdraws the
// declared fixture from the specs' accounts, with the reason.
func TestFixtureLostAccount(t *testing.T) {
	srv := fakeServer{messages: alice(t)[:2]}
	tg := remoteTarget(t, srv.start(t))
	if a, err := tg.Account(context.Background()); err != nil || a.Fixture != "alice" {
		t.Fatalf("before measuring: %+v %v", a, err)
	}
	_ = tg.MeasureFacts(context.Background())
	a, err := tg.Account(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a.Fixture != "" || !strings.Contains(a.FixtureLost, "no longer holds the declared fixture alice") {
		t.Errorf("after a mismatch: Fixture %q FixtureLost %q", a.Fixture, a.FixtureLost)
	}
}

// TestDerivedFactsMatchMeasured proves that the facts derived from a
// bundled server's profile (used for variants) are what measuring it on
// the wire finds.
func TestDerivedFactsMatchMeasured(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*profile.Profile)
	}{
		{"exchange2010", nil},
		{"rfc1939", nil},
		{"exchange2010", func(p *profile.Profile) { p.CloseAfterErrors = 3 }},
		{"exchange2010", func(p *profile.Profile) { p.CloseAfterErrors, p.CloseAfterErrorsTransaction = 1, 4; p.ErrText = false }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, err := Open(context.Background(), Config{Profile: tc.name, TLS: TLSNone})
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			tg := root
			if tc.mutate != nil {
				if tg, err = root.Variant(context.Background(), tc.mutate); err != nil {
					t.Fatal(err)
				}
			}
			derived := tg.Facts()
			if err := tg.MeasureFacts(context.Background()); err != nil {
				t.Fatalf("MeasureFacts: %v", err)
			}
			got := tg.Facts()
			if tc.mutate == nil {
				derived = deriveFacts(tg.ref.Profile)
			}
			pairs := []struct {
				what      string
				got, want any
			}{
				{"CAPA in AUTHORIZATION", got.CapaAuthorization, derived.CapaAuthorization},
				{"CAPA in TRANSACTION", got.CapaTransaction, derived.CapaTransaction},
				{"NOOP", got.NoopTransaction, derived.NoopTransaction},
				{"AUTHORIZATION errors", got.Authorization, derived.Authorization},
				{"TRANSACTION errors", got.Transaction, derived.Transaction},
				{"failed PASS closes", got.FailedPassCloses, derived.FailedPassCloses},
				{"fixture", [3]any{got.Fixture.Match, got.Fixture.Sizes, got.Fixture.Name}, [3]any{derived.Fixture.Match, derived.Fixture.Sizes, derived.Fixture.Name}},
			}
			for _, p := range pairs {
				if p.got != p.want {
					t.Errorf("%s: measured %v, derived %v", p.what, p.got, p.want)
				}
			}
		})
	}
}

// TestConnSeen checks what a connection remembers to explain a close.
func TestConnSeen(t *testing.T) {
	srv := fakeServer{closeAfter: 2, messages: alice(t)}
	addr := srv.start(t)
	tg := remoteTarget(t, addr)
	c, err := tg.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cmd("XYZW"); err != nil {
		t.Fatal(err)
	}
	if c.ErrReplies() != 1 || c.LastStatus() != "-ERR" || c.InTransaction() {
		t.Errorf("after one error: %d %q %v", c.ErrReplies(), c.LastStatus(), c.InTransaction())
	}
	if err := LoginUserPass(c, Account{User: fakeUser, Password: fakePass}); err != nil {
		t.Fatal(err)
	}
	if c.ErrReplies() != 0 || !c.InTransaction() {
		t.Errorf("after login: %d errors, transaction %v", c.ErrReplies(), c.InTransaction())
	}
	for range 2 {
		_, _ = c.Cmd("XYZW")
	}
	_, err = c.Cmd("NOOP")
	if !IsServerClose(err) || !c.ServerClosed() || c.ErrReplies() != 2 {
		t.Errorf("after the server closed: err %v, closed %v, %d errors", err, c.ServerClosed(), c.ErrReplies())
	}
}
