package embed

import (
	"bufio"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

func startRFC1939(t *testing.T, o Options) *Instance {
	t.Helper()
	p, err := profile.Load("rfc1939")
	if err != nil {
		t.Fatal(err)
	}
	o.Profile = p
	return StartTest(t, o)
}

// session sends each line in order on one connection and returns the
// first line of each reply.
func session(t *testing.T, addr string, lines ...string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	read := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return strings.TrimRight(s, "\r\n")
	}
	if g := read(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	var out []string
	for _, l := range lines {
		if _, err := c.Write([]byte(l + "\r\n")); err != nil {
			t.Fatal(err)
		}
		out = append(out, read())
	}
	return out
}

func TestListeners(t *testing.T) {
	for _, tc := range []struct {
		name               string
		plain, tls         string
		wantPlain, wantTLS bool
	}{
		{"both", Loopback, Loopback, true, true},
		{"plain only", Loopback, "", true, false},
		{"TLS only", "", Loopback, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := startRFC1939(t, Options{Plain: tc.plain, TLS: tc.tls})
			if (in.Plain != "") != tc.wantPlain || (in.TLS != "") != tc.wantTLS {
				t.Errorf("Plain %q, TLS %q", in.Plain, in.TLS)
			}
			if in.CertPool == nil {
				t.Error("no CertPool")
			}
		})
	}
}

func TestCloseRemovesOnlyItsOwnDirectory(t *testing.T) {
	p, err := profile.Load("rfc1939")
	if err != nil {
		t.Fatal(err)
	}
	given := t.TempDir()
	for _, tc := range []struct {
		dir      string
		wantKept bool
	}{{"", false}, {given, true}} {
		in, err := Start(context.Background(), Options{Profile: p, Dir: tc.dir, Plain: Loopback})
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(in.Dir); (err == nil) != tc.wantKept {
			t.Errorf("Dir %q (given %q): stat after Close: %v, want kept %v", in.Dir, tc.dir, err, tc.wantKept)
		}
	}
}

func TestControlCopiesFixtures(t *testing.T) {
	in := startRFC1939(t, Options{Plain: Loopback})
	pw, err := in.Control.CopyFixture("alice", "alice.copy")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := in.Control.UIDs("alice")
	got, err := in.Control.UIDs("alice.copy")
	if err != nil || len(got) != len(want) || len(got) == 0 {
		t.Fatalf("copy holds %d messages (%v), alice %d", len(got), err, len(want))
	}
	if r := session(t, in.Plain, "USER alice.copy", "PASS "+pw, "QUIT"); !strings.HasPrefix(r[1], "+OK") {
		t.Errorf("login to the copy: %q", r)
	}
	if _, err := in.Control.CopyFixture("nobody", "nobody.copy"); err == nil {
		t.Error("a copy of an account the seed lacks succeeded")
	}
}

func TestControlFailsRemovals(t *testing.T) {
	in := startRFC1939(t, Options{Plain: Loopback})
	pw, err := in.Control.CopyFixture("alice", "a1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fail   bool
		wantOK bool
	}{{true, false}, {false, true}} {
		restore := in.Control.FailRemovals("a1", func(int, string) bool { return tc.fail })
		r := session(t, in.Plain, "USER a1", "PASS "+pw, "DELE 1", "QUIT")
		restore()
		if got := strings.HasPrefix(r[3], "+OK"); got != tc.wantOK {
			t.Errorf("failing %v: QUIT answered %q", tc.fail, r[3])
		}
	}
}

func TestControlClock(t *testing.T) {
	wall := startRFC1939(t, Options{Plain: Loopback})
	if err := wall.Control.Advance(time.Hour); err == nil {
		t.Error("Advance on the real clock succeeded")
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	test := startRFC1939(t, Options{Plain: Loopback, Clock: start})
	if err := test.Control.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := test.Control.clock.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("clock reads %v, want %v", got, start.Add(time.Hour))
	}
}
