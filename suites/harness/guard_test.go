package harness

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
)

// recordingPeer reads everything the client writes, so a test can prove
// what reached the server.
type recordingPeer struct {
	mu  sync.Mutex
	got bytes.Buffer
}

func (p *recordingPeer) serve(nc net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		p.mu.Lock()
		p.got.Write(buf[:n])
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *recordingPeer) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got.String()
}

const (
	testUser     = "alice"
	testPassword = "won der"
	testStamp    = "<1896.697170952@dbc.mtview.ca.us>"
)

// guardedConn is a connection to a recording peer, guarded as a remote
// host with allow.
func guardedConn(t *testing.T, allow Permissions) (*Conn, *Recorder, *recordingPeer) {
	t.Helper()
	client, server := net.Pipe()
	peer := &recordingPeer{}
	go peer.serve(server)
	t.Cleanup(func() { client.Close(); server.Close() })
	rec := &Recorder{}
	c := newConn(client, newTranscript("test"), false)
	c.guard = &LineGuard{rec: rec, enforce: true, allow: allow, note: c.tr.note,
		accounts: []Account{{User: testUser, Password: testPassword}, {User: "", Password: ""}}}
	c.Greeting = parseReply([]byte("+OK POP3 server ready " + testStamp + "\r\n"))
	c.guard.SetGreeting(c.Greeting.Text)
	rec.track(c)
	rec.guard(c.guard, true)
	return c, rec, peer
}

func digest(secret string) string {
	sum := md5.Sum([]byte(testStamp + secret))
	return hex.EncodeToString(sum[:])
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestClassify: one table of writes (each a list of SendRaw calls on one
// connection, everything allowed) and the classes the lines get.
func TestClassify(t *testing.T) {
	all := Permissions{Reversible: true, Disruptive: true}
	tests := []struct {
		name   string
		writes []string
		want   []CommandClass // one per completed line, in order
	}{
		{"reads", []string{"STAT\r\n", "list 1\r\n", "RETR 1\r\n", "TOP 1 0\r\n", "UIDL\r\n", "NOOP\r\n", "CAPA\r\n"},
			[]CommandClass{ClassRead, ClassRead, ClassRead, ClassRead, ClassRead, ClassRead, ClassRead}},
		{"dele casings and arguments", []string{"DELE 1\r\n", "dele 1\r\n", "DeLe\r\n", "DELE abc\r\n", "DELE 999999\r\n", "DELE\t1\r\n"},
			[]CommandClass{ClassDele, ClassDele, ClassDele, ClassDele, ClassDele, ClassDele}},
		{"dele malformed", []string{" DELE 1\r\n", "DELE1\r\n", "DELE 1\n", "DELE \x00\r\n", "DELE " + strings.Repeat("x", 600) + "\r\n"},
			[]CommandClass{ClassDele, ClassDele, ClassDele, ClassDele, ClassDele}},
		{"dele after a bare CR", []string{"NOOP\rDELE 1\r\n"}, []CommandClass{ClassDele}},
		{"not dele", []string{"DELETE 1\r\n", "XDELE 1\r\n", "NOOP DELE\r\n"}, []CommandClass{ClassOther, ClassOther, ClassRead}},
		{"pipelined batch", []string{"RETR 1\r\nNOOP\r\nDELE 1\r\nSTAT\r\nRSET\r\nQUIT\r\n"},
			[]CommandClass{ClassRead, ClassRead, ClassDele, ClassRead, ClassReset, ClassQuit}},
		{"dele split over writes", []string{"DE", "LE 1\r\n"}, []CommandClass{ClassDele}},
		{"login", []string{"USER " + testUser + "\r\n", "PASS " + testPassword + "\r\n"}, []CommandClass{ClassLogin, ClassLogin}},
		{"wrong password for the account", []string{"USER " + testUser + "\r\n", "PASS " + testPassword + "-wrong\r\n"}, []CommandClass{ClassLogin, ClassFailedLogin}},
		{"wrong password, name in other case", []string{"user ALICE\r\n", "pass x\r\n"}, []CommandClass{ClassLogin, ClassFailedLogin}},
		{"wrong password pipelined", []string{"USER " + testUser + "\r\nPASS nope\r\n"}, []CommandClass{ClassLogin, ClassFailedLogin}},
		{"password after two spaces", []string{"USER " + testUser + "\r\n", "PASS  " + testPassword + "\r\n"}, []CommandClass{ClassLogin, ClassFailedLogin}},
		{"wrong password for an unknown name", []string{"USER no-such-user-x1\r\n", "PASS nope\r\n"}, []CommandClass{ClassLogin, ClassLogin}},
		{"apop", []string{"APOP " + testUser + " " + digest(testPassword) + "\r\n"}, []CommandClass{ClassLogin}},
		{"apop wrong digest", []string{"APOP " + testUser + " " + strings.Repeat("0", 32) + "\r\n"}, []CommandClass{ClassFailedLogin}},
		{"apop unknown name", []string{"APOP nobody " + strings.Repeat("0", 32) + "\r\n"}, []CommandClass{ClassLogin}},
		{"auth plain initial response", []string{"AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPassword) + "\r\n"}, []CommandClass{ClassLogin}},
		{"auth plain wrong password", []string{"AUTH PLAIN " + b64("\x00"+testUser+"\x00x") + "\r\n"}, []CommandClass{ClassFailedLogin}},
		{"auth plain continuation wrong", []string{"AUTH PLAIN\r\n", b64("\x00"+testUser+"\x00x") + "\r\n"}, []CommandClass{ClassLogin, ClassFailedLogin}},
		{"auth plain foreign authz", []string{"AUTH PLAIN\r\n", b64("bob\x00"+testUser+"\x00"+testPassword) + "\r\n"}, []CommandClass{ClassLogin, ClassFailedLogin}},
		{"auth plain one nul", []string{"AUTH PLAIN\r\n", b64(testUser+"\x00"+testPassword) + "\r\n"}, []CommandClass{ClassLogin, ClassFailedLogin}},
		{"auth plain unknown name", []string{"AUTH PLAIN\r\n", b64("\x00nobody\x00x") + "\r\n"}, []CommandClass{ClassLogin, ClassLogin}},
		{"auth login wrong", []string{"AUTH LOGIN\r\n", b64(testUser) + "\r\n", b64("x") + "\r\n"}, []CommandClass{ClassLogin, ClassLogin, ClassFailedLogin}},
		{"auth cancel", []string{"AUTH PLAIN\r\n", "*\r\n"}, []CommandClass{ClassLogin, ClassLogin}},
		{"reset and quit", []string{"RSET\r\n", "quit\r\n"}, []CommandClass{ClassReset, ClassQuit}},
		{"hostile", []string{"NO\x00OP\r\n", "NOOP\n", "STAT \xff\r\n", "LIST " + strings.Repeat("1", 300) + "\r\n", "USER a\x00x\r\n"},
			[]CommandClass{ClassHostile, ClassHostile, ClassHostile, ClassHostile, ClassHostile}},
		{"other", []string{"XYZZY\r\n", "LAST\r\n", "\r\n", "STLS\r\n"}, []CommandClass{ClassOther, ClassOther, ClassOther, ClassLogin}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, rec, _ := guardedConn(t, all)
			for _, w := range tc.writes {
				if err := c.SendRaw([]byte(w)); err != nil {
					t.Fatalf("SendRaw(%q): %v", w, err)
				}
			}
			want := map[CommandClass]int{}
			for _, cl := range tc.want {
				want[cl]++
			}
			if got := rec.ClassesSent(); !maps.Equal(got, want) {
				t.Errorf("classes %v, want %v", got, want)
			}
		})
	}
}

// TestClassifyLineByLine checks the order of classes, not just counts.
func TestClassifyLineByLine(t *testing.T) {
	c, _, _ := guardedConn(t, Permissions{})
	st := wireState{}
	for _, tc := range []struct {
		line string
		want CommandClass
	}{
		{"USER alice\r\n", ClassLogin},
		{"PASS nope\r\n", ClassFailedLogin},
		{"dElE 3\r\n", ClassDele},
		{"RSET\r\n", ClassReset},
	} {
		if got := c.guard.classify(&st, []byte(tc.line), true); got != tc.want {
			t.Errorf("classify(%q) = %s, want %s", tc.line, got, tc.want)
		}
	}
}

// TestGuardRefuses: against a remote host without permission, no DELE
// and no failed login of a configured account reaches the server, in any
// form, and nothing else of the same write goes either.
func TestGuardRefuses(t *testing.T) {
	tests := []struct {
		name    string
		allow   Permissions
		writes  []string
		refused bool
		flag    string
	}{
		{"dele readonly", Permissions{}, []string{"DELE 1\r\n"}, true, "reversible"},
		{"lower-case dele", Permissions{}, []string{"dele abc\r\n"}, true, "reversible"},
		{"pipelined dele", Permissions{}, []string{"NOOP\r\nDELE 1\r\nRSET\r\n"}, true, "reversible"},
		{"split dele", Permissions{}, []string{"DE", "LE 1\r\n"}, true, "reversible"},
		{"dele with disruptive only", Permissions{Disruptive: true, Slow: true}, []string{"DELE 1\r\n"}, true, "reversible"},
		{"dele reversible", Permissions{Reversible: true}, []string{"DELE 1\r\n"}, false, ""},
		{"dele mutating", Permissions{Mutating: true}, []string{"DELE 1\r\n"}, false, ""},
		{"failed login readonly", Permissions{}, []string{"USER alice\r\n", "PASS x\r\n"}, true, "disruptive"},
		{"failed login reversible", Permissions{Reversible: true, Mutating: true}, []string{"USER alice\r\nPASS x\r\n"}, true, "disruptive"},
		{"failed login disruptive", Permissions{Disruptive: true}, []string{"USER alice\r\n", "PASS x\r\n"}, false, ""},
		{"unknown user readonly", Permissions{}, []string{"USER no-such-user\r\n", "PASS x\r\n"}, false, ""},
		{"reads readonly", Permissions{}, []string{"STAT\r\nLIST\r\nRSET\r\nQUIT\r\n"}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, rec, peer := guardedConn(t, tc.allow)
			var err error
			for _, w := range tc.writes {
				if err = c.SendRaw([]byte(w)); err != nil {
					break
				}
			}
			c.Close()
			got := peer.String()
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("err %v, want ErrNotAllowed naming %q", err, tc.flag)
			}
			if rec.Refusal() == nil {
				t.Error("the recorder holds no refusal")
			}
			if hasDele([]byte(got)) || strings.Contains(strings.ToUpper(got), "DELE") || strings.Contains(got, "PASS x") {
				t.Errorf("the server got %q", got)
			}
			if strings.Contains(tc.name, "pipelined") && strings.Contains(got, "NOOP") {
				t.Errorf("part of a refused write went out: %q", got)
			}
			if !strings.Contains(c.Transcript().String(), "not sent") {
				t.Errorf("the transcript does not show the refusal:\n%s", c.Transcript())
			}
			if len(rec.ClassesRefused()) == 0 {
				t.Error("no refused class counted")
			}
		})
	}
}

// TestBundledServerNotGuarded: on the bundled server (no enforcement)
// DELE goes out and is counted.
func TestBundledServerNotGuarded(t *testing.T) {
	c, rec, peer := guardedConn(t, Permissions{})
	c.guard.enforce = false
	if err := c.Send("DELE 1"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if rec.ClassesSent()[ClassDele] != 1 {
		t.Errorf("sent %v", rec.ClassesSent())
	}
	_ = peer
}

// TestUnfinishedLineCounted: a line the client never ended still reached
// the server; Flush counts it, as hostile.
func TestUnfinishedLineCounted(t *testing.T) {
	c, rec, _ := guardedConn(t, Permissions{})
	if err := c.SendRaw([]byte("NOOP")); err != nil {
		t.Fatal(err)
	}
	rec.Flush()
	if got := rec.ClassesSent(); got[ClassHostile] != 1 || len(got) != 1 {
		t.Errorf("sent %v", got)
	}
}

// TestLockoutSuspicion: a refused right password counts as a possible
// lockout only after failed logins of earlier specs, and not once the
// same spec saw that account's right password taken.
func TestLockoutSuspicion(t *testing.T) {
	refused := Reply{Raw: []byte("-ERR [AUTH] no\r\n"), Status: "-ERR", Text: "[AUTH] no"}
	tests := []struct {
		name          string
		earlier, here int  // failed logins in earlier specs, in this one
		loggedInFirst bool // this spec logged in as the account before
		beside        bool // other sessions of the run send failed logins
		want          bool
	}{
		{"no failed logins", 0, 0, false, false, false},
		{"failed logins of this spec only", 0, 2, false, false, false},
		{"failed logins of earlier specs", 3, 0, false, false, true},
		{"both", 3, 1, false, false, true},
		{"logged in earlier in this spec", 3, 0, true, false, false},
		{"failed logins beside", 0, 0, false, true, true},
		{"failed logins beside, logged in earlier in this spec", 0, 0, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Recorder
			if tt.beside {
				r.FailedLoginsBeside()
			}
			for range tt.earlier {
				r.tally(ClassFailedLogin)
			}
			r.Flush() // the spec boundary
			for range tt.here {
				r.tally(ClassFailedLogin)
			}
			if tt.loggedInFirst {
				r.acceptedRightLogin("alice")
			}
			r.refusedRightLogin("alice", refused)
			if got := r.Lockout() != ""; got != tt.want {
				t.Errorf("Lockout() = %q, want a suspicion: %v", r.Lockout(), tt.want)
			}
			r.Flush()
			if r.Lockout() != "" {
				t.Errorf("the suspicion outlived its spec: %q", r.Lockout())
			}
		})
	}
}

// TestRightLogin: the guard knows when the last write carried a
// configured account's right password, alone, so that a refusal of it
// can be told apart (Recorder.refusedRightLogin).
func TestRightLogin(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"PASS right", []string{"USER alice\r\n", "PASS won der\r\n"}, testUser},
		{"PASS wrong", []string{"USER alice\r\n", "PASS nope\r\n"}, ""},
		{"PASS of a name nobody has", []string{"USER nobody\r\n", "PASS won der\r\n"}, ""},
		{"PASS pipelined with more", []string{"USER alice\r\n", "PASS won der\r\nSTAT\r\n"}, ""},
		{"a command after PASS", []string{"USER alice\r\n", "PASS won der\r\n", "STAT\r\n"}, ""},
		{"PLAIN right, initial response", []string{"AUTH PLAIN " + b64("\x00alice\x00won der") + "\r\n"}, testUser},
		{"PLAIN right, after the challenge", []string{"AUTH PLAIN\r\n", b64("\x00alice\x00won der") + "\r\n"}, testUser},
		{"PLAIN acting as another", []string{"AUTH PLAIN " + b64("bob\x00alice\x00won der") + "\r\n"}, ""},
		{"LOGIN right", []string{"AUTH LOGIN\r\n", b64("alice") + "\r\n", b64("won der") + "\r\n"}, testUser},
		{"LOGIN wrong", []string{"AUTH LOGIN\r\n", b64("alice") + "\r\n", b64("x") + "\r\n"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := guardedConn(t, Permissions{Disruptive: true})
			for _, w := range tt.writes {
				if err := c.guard.Admit([]byte(w)); err != nil {
					t.Fatalf("Admit(%q): %v", w, err)
				}
			}
			if got := c.guard.ws.right; got != tt.want {
				t.Errorf("right login after %q = %q, want %q", tt.writes, got, tt.want)
			}
		})
	}
}

// TestForbidLogin: in a spec declared never to log in, the guard refuses
// the line that carries an account's right credentials, on a remote host
// (the configured accounts) and on the bundled server (the accounts it
// handed out, though nothing else is enforced there); failed logins and
// logins of names nobody has go out.
func TestForbidLogin(t *testing.T) {
	tests := []struct {
		name    string
		bundled bool
		writes  []string
		refused int // index of the refused write, -1 for none
	}{
		{"PASS right", false, []string{"USER alice\r\n", "PASS won der\r\n"}, 1},
		{"PASS right, pipelined with more", false, []string{"USER alice\r\n", "PASS won der\r\nSTAT\r\n"}, 1},
		{"PASS wrong", false, []string{"USER alice\r\n", "PASS nope\r\n"}, -1},
		{"PASS of a name nobody has", false, []string{"USER nobody\r\n", "PASS won der\r\n"}, -1},
		{"PLAIN right", false, []string{"AUTH PLAIN " + b64("\x00alice\x00won der") + "\r\n"}, 0},
		{"PLAIN acting as another", false, []string{"AUTH PLAIN " + b64("bob\x00alice\x00won der") + "\r\n"}, -1},
		{"LOGIN right", false, []string{"AUTH LOGIN\r\n", b64("alice") + "\r\n", b64("won der") + "\r\n"}, 2},
		{"bundled: PASS of an account handed out", true, []string{"USER alice.7\r\n", "PASS s3cret\r\n"}, 1},
		{"bundled: PASS wrong", true, []string{"USER alice.7\r\n", "PASS nope\r\n"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec, _ := guardedConn(t, Permissions{Disruptive: true})
			if tt.bundled {
				c.guard.enforce, c.guard.accounts = false, nil
				rec.issue(Account{User: "alice.7", Password: "s3cret"})
			}
			rec.ForbidLogin()
			for i, w := range tt.writes {
				err := c.guard.Admit([]byte(w))
				switch {
				case i == tt.refused && !errors.Is(err, ErrLoginForbidden):
					t.Fatalf("write %d (%q) got %v, want ErrLoginForbidden", i, w, err)
				case i != tt.refused && err != nil:
					t.Fatalf("write %d (%q): %v", i, w, err)
				}
			}
			rec.Flush()
			if err := c.guard.Admit([]byte(tt.writes[len(tt.writes)-1])); tt.refused >= 0 && errors.Is(err, ErrLoginForbidden) {
				t.Error("the ban outlived the spec (Flush)")
			}
		})
	}
}

// TestForbidReads: in a spec declared login-only, a session in
// TRANSACTION refuses the commands that read or mark messages, alone or
// in a pipelined batch; the same lines go out before login, the others
// go out in TRANSACTION, and the ban ends with the spec (Flush).
func TestForbidReads(t *testing.T) {
	tests := []struct {
		name        string
		transaction bool
		write       string
		refused     bool
	}{
		{"RETR in TRANSACTION", true, "RETR 1\r\n", true},
		{"TOP in TRANSACTION", true, "TOP 1 0\r\n", true},
		{"list, lower case", true, "list\r\n", true},
		{"UIDL n", true, "UIDL 2\r\n", true},
		{"DELE", true, "DELE 1\r\n", true},
		{"LIST inside a pipelined batch", true, "NOOP\r\nLIST\r\n", true},
		{"STAT", true, "STAT\r\n", false},
		{"CAPA, NOOP, RSET", true, "CAPA\r\nNOOP\r\nRSET\r\n", false},
		{"a keyword that only starts like LIST", true, "LISTS\r\n", false},
		{"RETR before login", false, "RETR 1\r\n", false},
		{"LIST before login", false, "LIST\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec, _ := guardedConn(t, Permissions{Reversible: true})
			c.seen.transaction = tt.transaction
			rec.ForbidReads()
			err := c.SendRaw([]byte(tt.write))
			switch {
			case tt.refused && !errors.Is(err, ErrReadForbidden):
				t.Fatalf("%q got %v, want ErrReadForbidden", tt.write, err)
			case !tt.refused && err != nil:
				t.Fatalf("%q: %v", tt.write, err)
			}
			rec.Flush()
			if err := c.SendRaw([]byte(tt.write)); errors.Is(err, ErrReadForbidden) {
				t.Error("the ban outlived the spec (Flush)")
			}
		})
	}
}
