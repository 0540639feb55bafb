package harness

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// aheadTarget opens the bundled server (exchange2010) as a remote host
// that may hold room connections, the one opened ahead included, and
// may send failed logins.
func aheadTarget(t *testing.T, room int) *Target {
	t.Helper()
	tg := refAsRemote(t, Permissions{Disruptive: true})
	tg.DialAhead(func() int { return room })
	return tg
}

// opened waits until the connection opened ahead, if any, is open.
func opened(t *testing.T, tg *Target) bool {
	t.Helper()
	tg.rec.mu.Lock()
	s := tg.rec.ahead.spare
	tg.rec.mu.Unlock()
	if s == nil {
		return false
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection opened ahead did not open within 5 s")
	}
	return s.c != nil
}

// dialSpec dials as a spec does and ends the spec; it returns the
// transcript and whether the dial took a connection opened ahead.
func dialSpec(t *testing.T, tg *Target, during func(c *Conn)) (string, bool) {
	t.Helper()
	c, err := tg.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Greeting.OK() {
		t.Fatalf("greeting %q", c.Greeting)
	}
	if during != nil {
		during(c)
	}
	tr := tg.Recorder().EndSpec(true)
	return tr, strings.Contains(tr, "opened ahead")
}

// TestDialAhead: the next dial takes the connection opened ahead only
// when the room allowed one and nothing since may have changed how the
// server treats a new connection.
func TestDialAhead(t *testing.T) {
	tests := []struct {
		name string
		room int
		// between runs on the first spec's connection once the one
		// ahead is open.
		between func(t *testing.T, tg *Target, c *Conn)
		want    bool
	}{
		{"taken", 2, nil, true},
		{"no room beside the spec's session", 1, nil, false},
		{"none allowed", 0, nil, false},
		{"a failed login since", 2, func(t *testing.T, tg *Target, c *Conn) {
			if _, err := c.Cmd("USER alice"); err != nil {
				t.Fatal(err)
			}
			if r, err := c.Cmd("PASS not-the-password"); err != nil || !r.Err() {
				t.Fatalf("wrong PASS: %v %v", r, err)
			}
		}, false},
		{"hostile input since", 2, func(t *testing.T, tg *Target, c *Conn) {
			if r, err := c.Cmd("NO\x00OP"); err != nil || !r.Err() {
				t.Fatalf("NUL: %v %v", r, err)
			}
		}, false},
		{"too old", 2, func(t *testing.T, tg *Target, c *Conn) {
			tg.rec.mu.Lock()
			tg.rec.ahead.within = 50 * time.Millisecond
			tg.rec.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}, false},
		{"the server closed it", 2, func(t *testing.T, tg *Target, c *Conn) {
			tg.rec.mu.Lock()
			s := tg.rec.ahead.spare
			tg.rec.mu.Unlock()
			// A close of the write side ends the session on the server,
			// which closes its side: the connection is no longer quiet.
			if err := s.c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			for end := time.Now().Add(2 * time.Second); s.c.quietSinceKept() && time.Now().Before(end); {
				time.Sleep(10 * time.Millisecond)
			}
		}, false},
		{"Release", 2, func(t *testing.T, tg *Target, c *Conn) { tg.Release() }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := aheadTarget(t, tc.room)
			_, took := dialSpec(t, tg, func(c *Conn) {
				if got := opened(t, tg); got != (tc.room >= 2) {
					t.Fatalf("a connection opened ahead: %v with room %d", got, tc.room)
				}
				if tc.between != nil {
					tc.between(t, tg, c)
				}
			})
			if took {
				t.Fatal("the first dial took a connection opened ahead")
			}
			tr, took := dialSpec(t, tg, nil)
			if took != tc.want {
				t.Errorf("the second dial took the connection opened ahead: %v, want %v\n%s", took, tc.want, tr)
			}
			// Counted once, when it was opened: the first spec's session
			// and the one ahead; a second spec that did not take it opens
			// its own; each dial then opens the next one ahead.
			want := 2
			switch {
			case tc.room >= 2 && tc.want:
				want = 3
			case tc.room >= 2:
				want = 4
			}
			if got := tg.Recorder().Traffic().Connections; got != want {
				t.Errorf("%d connections counted, want %d", got, want)
			}
		})
	}
}

// TestDialAheadRoom: a spec's open connections, its raw ones included,
// count against the room; Release and TakeAhead keep any other from
// opening ahead until the spec ends or resumes.
func TestDialAheadRoom(t *testing.T) {
	ctx := context.Background()
	t.Run("raw connections count", func(t *testing.T) {
		tg := aheadTarget(t, 2)
		g := tg.LineGuard() // a spec's own connection, still open
		if _, err := tg.Dial(ctx); err != nil {
			t.Fatal(err)
		}
		if opened(t, tg) {
			t.Fatal("opened ahead beside two open connections with room for two")
		}
		g.Closed()
		tg.Recorder().EndSpec(true)
		if _, err := tg.Dial(ctx); err != nil {
			t.Fatal(err)
		}
		if !opened(t, tg) {
			t.Fatal("none opened ahead once the raw connection was closed")
		}
	})
	t.Run("TakeAhead then ResumeAhead", func(t *testing.T) {
		tg := aheadTarget(t, 4)
		dialSpec(t, tg, func(*Conn) { opened(t, tg) })
		a, ok := tg.TakeAhead(ctx, tg.PlainAddr(), false)
		if !ok {
			t.Fatal("TakeAhead found no connection opened ahead")
		}
		defer a.Conn.Close()
		if !a.Greeting.OK() || !strings.Contains(a.Note, "opened ahead") {
			t.Fatalf("greeting %q, note %q", a.Greeting, a.Note)
		}
		// The connection is in AUTHORIZATION, its greeting read.
		if _, err := a.Conn.Write([]byte("NOOP\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		_ = a.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := a.Conn.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "-ERR") {
			t.Fatalf("NOOP in AUTHORIZATION: %q %v", buf[:n], err)
		}
		if _, err := tg.Dial(ctx); err != nil {
			t.Fatal(err)
		}
		if opened(t, tg) {
			t.Fatal("opened ahead after TakeAhead, before ResumeAhead")
		}
		tg.ResumeAhead()
		if _, err := tg.Dial(ctx); err != nil {
			t.Fatal(err)
		}
		if !opened(t, tg) {
			t.Fatal("none opened ahead after ResumeAhead")
		}
	})
	t.Run("another port", func(t *testing.T) {
		tg := aheadTarget(t, 2)
		dialSpec(t, tg, func(*Conn) { opened(t, tg) })
		if c := tg.takeAhead(ctx, "127.0.0.1:1", false); c != nil {
			t.Fatal("a connection opened ahead to one port was taken for another")
		}
		if _, ok := tg.TakeAhead(ctx, tg.PlainAddr(), false); ok {
			t.Fatal("the connection opened ahead outlived a dial of another port")
		}
	})
	t.Run("a failure stops them", func(t *testing.T) {
		tg := aheadTarget(t, 2)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := l.Addr().String()
		l.Close()
		tg.dialAhead(closed, false)
		if opened(t, tg) {
			t.Fatal("a connection to a closed port opened")
		}
		tg.rec.mu.Lock()
		stopped := tg.rec.ahead.room == nil
		tg.rec.mu.Unlock()
		if !stopped {
			t.Error("connections are still opened ahead after one failed")
		}
	})
}
