package server

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// Profile keys that make the server behave like real servers the suite
// must judge fairly: no CAPA, DELE applied at once, bare -ERR, a close
// after a few errors.

func TestCAPAStates(t *testing.T) {
	cases := []struct {
		capa          profile.CAPAStates
		before, after string // status prefix of CAPA in each state
		authCode      bool   // a failed PASS carries [AUTH]
	}{
		{"", "+OK", "+OK", true},
		{profile.CAPABoth, "+OK", "+OK", true},
		{profile.CAPAAuthorization, "+OK", "-ERR Unknown command", true},
		{profile.CAPANone, "-ERR Unknown command", "-ERR Unknown command", false},
	}
	for _, tc := range cases {
		t.Run(cmp.Or(string(tc.capa), "default"), func(t *testing.T) {
			t.Parallel()
			p := loadProfile(t, "rfc1939")
			p.CAPA = tc.capa
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			ts := startServer(t, p)
			c := ts.dial(t)
			got := c.cmd("CAPA")
			wantPrefix(t, got, tc.before)
			if strings.HasPrefix(got, "+OK") {
				c.multi()
			}
			wantPrefix(t, c.cmd("USER alice"), "+OK")
			pass := c.cmd("PASS wrong")
			if has := strings.HasPrefix(pass, "-ERR [AUTH] "); has != tc.authCode {
				t.Errorf("failed PASS: %q, want [AUTH] %v", pass, tc.authCode)
			}
			c.login("alice", "wonderland")
			got = c.cmd("CAPA")
			wantPrefix(t, got, tc.after)
			if strings.HasPrefix(got, "+OK") {
				c.multi()
			}
			// The commands the capabilities name still work.
			wantPrefix(t, c.cmd("TOP 1 0"), "+OK")
			c.multi()
			wantPrefix(t, c.cmd("UIDL 1"), "+OK 1 ")
			wantPrefix(t, c.cmd("QUIT"), "+OK")
		})
	}
}

func TestCAPAValidate(t *testing.T) {
	p := loadProfile(t, "rfc1939")
	p.CAPA = "sometimes"
	p.DeleApplies = "later"
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), "capa:") || !strings.Contains(err.Error(), "dele_applies:") {
		t.Fatalf("Validate: %v, want errors for capa and dele_applies", err)
	}
}

// messageFiles counts alice's message files in the store directory: what
// is on disk, whatever the server's memory says.
func messageFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "users", "alice", "messages"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestDeleApplies(t *testing.T) {
	cases := []struct {
		dele profile.DeleApplies
		// alice's messages on disk after DELE 1 (before any QUIT), after
		// RSET, and after DELE 2 and a close without QUIT.
		afterDele, afterRset, afterDrop int
		// STAT after RSET.
		rsetStat string
	}{
		{"", 6, 6, 6, "+OK 6 "},
		{profile.DeleAtQuit, 6, 6, 6, "+OK 6 "},
		{profile.DeleImmediately, 5, 5, 4, "+OK 5 "},
	}
	for _, tc := range cases {
		t.Run(cmp.Or(string(tc.dele), "default"), func(t *testing.T) {
			t.Parallel()
			p := loadProfile(t, "rfc1939")
			p.DeleApplies = tc.dele
			ts := startServer(t, p)
			count := func(when string, want int) {
				t.Helper()
				msgs, err := ts.store.Messages("alice")
				if err != nil {
					t.Fatal(err)
				}
				if n := messageFiles(t, ts.dir); len(msgs) != want || n != want {
					t.Errorf("%s: %d messages in the store, %d files, want %d", when, len(msgs), n, want)
				}
			}
			c := ts.dial(t)
			c.login("alice", "wonderland")
			wantPrefix(t, c.cmd("DELE 1"), "+OK")
			wantPrefix(t, c.cmd("DELE 1"), "-ERR ")
			wantPrefix(t, c.cmd("STAT"), "+OK 5 ")
			count("after DELE 1", tc.afterDele)
			wantPrefix(t, c.cmd("RSET"), "+OK")
			wantPrefix(t, c.cmd("STAT"), tc.rsetStat)
			count("after RSET", tc.afterRset)
			wantPrefix(t, c.cmd("DELE 2"), "+OK")
			c.conn.Close()
			time.Sleep(50 * time.Millisecond)
			count("after a close without QUIT", tc.afterDrop)

			// A new session sees what is on disk; QUIT removes its marks
			// either way.
			c = ts.dial(t)
			c.login("alice", "wonderland")
			wantPrefix(t, c.cmd("STAT"), fmt.Sprintf("+OK %d ", tc.afterDrop))
			wantPrefix(t, c.cmd("DELE 1"), "+OK")
			wantPrefix(t, c.cmd("QUIT"), "+OK")
			c.closed()
			count("after DELE 1 and QUIT", tc.afterDrop-1)
		})
	}
}

// TestCloseAfterErrorsBare: with close_after_errors 3, no CAPA and bare
// -ERR, the third -ERR of a state is the last line before the close,
// whatever the command: an unknown one, CAPA, a failed PASS, a bad
// argument. The count starts again at login.
func TestCloseAfterErrorsBare(t *testing.T) {
	cases := []struct {
		name  string
		login bool
		// cmds end with the command whose -ERR is the third; want holds
		// the replies before it (+OK: any text after it).
		cmds, want []string
	}{
		{"unknown", false, []string{"XYZZY", "XYZZY", "XYZZY"}, []string{"-ERR", "-ERR"}},
		{"capa", false, []string{"CAPA", "CAPA", "CAPA"}, []string{"-ERR", "-ERR"}},
		{"failed pass", false, []string{"USER alice", "PASS bad", "USER alice", "PASS bad", "USER alice", "PASS bad"}, []string{"+OK", "-ERR", "+OK", "-ERR", "+OK"}},
		{"mixed", false, []string{"PASS x", "USER alice", "PASS bad", "STAT"}, []string{"-ERR", "+OK", "-ERR"}},
		{"transaction", true, []string{"CAPA", "RETR 99", "NOOP", "DELE x"}, []string{"-ERR", "-ERR", "+OK"}},
		{"transaction after auth errors", true, []string{"XYZZY", "LIST 0", "STAT", "TOP 1"}, []string{"-ERR", "-ERR", "+OK"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := loadProfile(t, "rfc1939")
			p.CAPA = profile.CAPANone
			p.ErrText = false
			p.CloseAfterErrors = 3
			ts := startServer(t, p)
			c := ts.dial(t)
			if tc.login {
				// Two errors before login do not count after it.
				wantPrefix(t, c.cmd("NOPE"), "-ERR")
				wantPrefix(t, c.cmd("NOPE"), "-ERR")
				c.login("alice", "wonderland")
			}
			last := len(tc.cmds) - 1
			for i, line := range tc.cmds[:last] {
				// -ERR exactly (bare); +OK with whatever text.
				if got := c.cmd(line); got != tc.want[i] && (tc.want[i] == "-ERR" || !strings.HasPrefix(got, "+OK")) {
					t.Fatalf("%q: got %q, want %q", line, got, tc.want[i])
				}
			}
			c.send(tc.cmds[last] + "\r\n")
			if got := c.closed(); got != "-ERR\r\n" {
				t.Fatalf("%q, the third error: got %q, want a bare -ERR and the close", tc.cmds[last], got)
			}
		})
	}
}
