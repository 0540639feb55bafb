package harness

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
)

// keepTarget opens the bundled server (exchange2010, which takes two
// logins of one account at once) as a remote host.
func keepTarget(t *testing.T) *Target {
	t.Helper()
	return refAsRemote(t, Permissions{})
}

// refAsRemote opens the bundled server (exchange2010) as a remote host
// the run may send what allow permits.
func refAsRemote(t *testing.T, allow Permissions) *Target {
	t.Helper()
	prof, err := profile.Load("exchange2010")
	if err != nil {
		t.Fatal(err)
	}
	prof.PlaintextBeforeTLS = true
	in := embed.StartTest(t, embed.Options{Profile: prof, Plain: embed.Loopback})
	host, portText, _ := net.SplitHostPort(in.Plain)
	port, _ := strconv.Atoi(portText)
	tg, err := Open(context.Background(), Config{Host: host, Port: port, TLS: TLSNone, Profile: "exchange2010", User: "alice", Password: "wonderland", Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// TestKeptSession: a session is handed to the next spec only when it is
// exactly as a fresh login leaves it and the spec before passed.
func TestKeptSession(t *testing.T) {
	read := func(t *testing.T, c *Conn) {
		if _, err := c.Cmd("STAT"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CmdMulti("LIST"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		keep   bool // KeepSessions with a predicate that says yes
		run    func(t *testing.T, c *Conn)
		passed bool
		want   bool
	}{
		{"read in full", true, read, true, true},
		{"multi-line body read line by line", true, func(t *testing.T, c *Conn) {
			if r, err := c.Cmd("UIDL"); err != nil || !r.OK() {
				t.Fatalf("UIDL: %v %v", r, err)
			}
			for {
				l, err := c.ReadLine()
				if err != nil {
					t.Fatal(err)
				}
				if string(l) == ".\r\n" {
					return
				}
			}
		}, true, true},
		{"not kept: the spec failed", true, read, false, false},
		{"not kept: no KeepSessions", false, read, true, false},
		{"not kept: a negative reply", true, func(t *testing.T, c *Conn) {
			if r, err := c.Cmd("RETR 999"); err != nil || !r.Err() {
				t.Fatalf("RETR 999: %v %v", r, err)
			}
		}, true, false},
		{"not kept: a multi-line body left unread", true, func(t *testing.T, c *Conn) {
			if _, err := c.Cmd("LIST"); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"not kept: a reply read as a raw line", true, func(t *testing.T, c *Conn) {
			if err := c.Send("NOOP"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReadLine(); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"not kept: a reply not read", true, func(t *testing.T, c *Conn) {
			if err := c.Send("NOOP"); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"not kept: an unknown command", true, func(t *testing.T, c *Conn) {
			if _, err := c.Cmd("LAST"); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"not kept: QUIT", true, func(t *testing.T, c *Conn) {
			if _, err := c.Cmd("QUIT"); err != nil {
				t.Fatal(err)
			}
		}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := keepTarget(t)
			if tc.keep {
				tg.KeepSessions(func() bool { return true })
			}
			a := Account{User: "alice", Password: "wonderland"}
			ctx1, cancel1 := context.WithCancel(context.Background())
			first, err := tg.Session(ctx1, a)
			if err != nil {
				t.Fatal(err)
			}
			tc.run(t, first)
			tg.Recorder().EndSpec(tc.passed)
			// The first spec's context ends after its connections are
			// handled, as Ginkgo's does.
			cancel1()
			if got := tg.HoldsSession(); got != tc.want {
				t.Fatalf("HoldsSession = %v, want %v", got, tc.want)
			}
			ctx2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			second, err := tg.Session(ctx2, a)
			if err != nil {
				t.Fatal(err)
			}
			if (second == first) != tc.want {
				t.Fatalf("second spec got the first session: %v, want %v", second == first, tc.want)
			}
			if r, err := second.Cmd("STAT"); err != nil || !r.OK() {
				t.Fatalf("STAT on the second spec's session: %v %v", r, err)
			}
			tr := tg.Recorder().EndSpec(true)
			if kept := strings.Contains(tr, "kept from an earlier spec"); kept != tc.want {
				t.Errorf("transcript names the kept session: %v, want %v\n%s", kept, tc.want, tr)
			}
			want := 2
			if tc.want {
				want = 1
			}
			if got := tg.Recorder().Traffic().Connections; got != want {
				t.Errorf("%d connections, want %d", got, want)
			}
		})
	}
}

// TestKeptSessionLetGo: the kept session is closed before the target
// opens another connection, and once the predicate says no; a spec handed
// a session that read mail with RETR may not QUIT it.
func TestKeptSessionLetGo(t *testing.T) {
	a := Account{User: "alice", Password: "wonderland"}
	keep := func(t *testing.T, tg *Target, cmds ...string) *Conn {
		t.Helper()
		c, err := tg.Session(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range cmds {
			if _, err := c.CmdMulti(line); err != nil {
				t.Fatal(err)
			}
		}
		tg.Recorder().EndSpec(true)
		if !tg.HoldsSession() {
			t.Fatal("the session was not kept")
		}
		return c
	}
	t.Run("a dial", func(t *testing.T) {
		tg := keepTarget(t)
		tg.KeepSessions(func() bool { return true })
		kept := keep(t, tg, "UIDL")
		c, err := tg.Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if tg.HoldsSession() {
			t.Error("still holds a session after a dial")
		}
		if _, err := kept.Cmd("NOOP"); err == nil {
			t.Error("the kept session still answers after a dial")
		}
	})
	t.Run("the predicate", func(t *testing.T) {
		tg := keepTarget(t)
		may := true
		tg.KeepSessions(func() bool { return may })
		first := keep(t, tg)
		// Handed on: the predicate decides at the end of the spec.
		second, err := tg.Session(context.Background(), a)
		if err != nil || second != first {
			t.Fatalf("not handed on: %v", err)
		}
		may = false
		tg.Recorder().EndSpec(true)
		if tg.HoldsSession() {
			t.Error("kept after the predicate said no")
		}
	})
	t.Run("QUIT after RETR", func(t *testing.T) {
		tg := keepTarget(t)
		tg.KeepSessions(func() bool { return true })
		keep(t, tg, "RETR 1")
		c, err := tg.Session(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send("QUIT"); !errors.Is(err, ErrQuitHandedOn) || !errors.Is(err, ErrNotAllowed) {
			t.Errorf("QUIT on a session handed on after RETR: %v, want ErrQuitHandedOn", err)
		}
	})
	t.Run("the server closed it", func(t *testing.T) {
		tg := keepTarget(t)
		tg.KeepSessions(func() bool { return true })
		first := keep(t, tg)
		// Let the server see a close of the write side: it ends the
		// session, and the kept one must not be handed on.
		if err := first.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(2 * time.Second); first.quietSinceKept() && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		second, err := tg.Session(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		if second == first {
			t.Error("a session the server closed was handed on")
		}
	})
}

// TestKeepWithin: a kept session waits at most 20 s, and at most half a
// shorter authenticated timer of the profile.
func TestKeepWithin(t *testing.T) {
	for _, tc := range []struct {
		timer, want time.Duration
	}{
		{30 * time.Minute, keepFor},
		{10 * time.Second, 5 * time.Second},
		{0, keepFor},
	} {
		tg := &Target{Profile: &profile.Profile{}}
		tg.Profile.Timers.Authenticated = profile.Duration(tc.timer)
		if got := keepWithin(tg); got != tc.want {
			t.Errorf("authenticated timer %v: keep %v, want %v", tc.timer, got, tc.want)
		}
	}
}
