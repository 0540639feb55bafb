package harness

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTranscriptRedaction checks that no secret a client sends reaches the
// transcript, whether sent alone or pipelined in one write.
func TestTranscriptRedaction(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		secret []string
	}{
		{"pass", []string{"PASS s3cret pass\r\n"}, []string{"s3cret"}},
		{"pipelined user and pass", []string{"USER alice\r\nPASS pipelined-secret\r\nSTAT\r\n"}, []string{"pipelined-secret"}},
		{"apop", []string{"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n"}, []string{"c4c9334bac560ecc979e58001b3e22fb"}},
		{"auth initial response", []string{"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"}, []string{"AGFsaWNlAHdvbmRlcmxhbmQ="}},
		{"auth continuation", []string{"AUTH PLAIN\r\n", "AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"}, []string{"AGFsaWNlAHdvbmRlcmxhbmQ="}},
		{"lower-case pass with tab", []string{"pass\tlower-secret\r\n"}, []string{"lower-secret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := server.Read(buf); err != nil {
						return
					}
				}
			}()
			c := newConn(client, newTranscript("test"), false)
			for _, w := range tc.writes {
				if err := c.SendRaw([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			got := c.Transcript().String()
			for _, s := range tc.secret {
				if strings.Contains(got, s) {
					t.Errorf("transcript holds the secret %q:\n%s", s, got)
				}
			}
			if !strings.Contains(got, "redacted") {
				t.Errorf("transcript does not say it redacted anything:\n%s", got)
			}
		})
	}
}

func TestMultiBodyUnstuffs(t *testing.T) {
	m := Multi{Lines: [][]byte{[]byte("..one\r\n"), []byte("two\r\n"), []byte("..\r\n")}}
	if got, want := string(m.Body()), ".one\r\ntwo\r\n.\r\n"; got != want {
		t.Errorf("Body() = %q, want %q", got, want)
	}
}

// TestReadBlockBounded: a multi-line response that never ends stops at
// MaxMultiOctets with ErrResponseTooLong instead of filling memory.
func TestReadBlockBounded(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		if _, err := server.Write([]byte("+OK\r\n")); err != nil {
			return
		}
		line := []byte(strings.Repeat("x", 4094) + "\r\n")
		for {
			if _, err := server.Write(line); err != nil {
				return
			}
		}
	}()
	c := newConn(client, newTranscript("test"), false)
	m, err := c.ReadMulti()
	if !errors.Is(err, ErrResponseTooLong) || !strings.Contains(err.Error(), "64 MiB") {
		t.Fatalf("err %v, want ErrResponseTooLong", err)
	}
	if len(m.Lines) != 0 {
		t.Errorf("%d lines kept after the cut", len(m.Lines))
	}
}

// TestLineAtLimitFailsAtOnce: MaxLineOctets octets without LF are too
// long whatever follows; the client does not wait for more.
func TestLineAtLimitFailsAtOnce(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() { _, _ = server.Write([]byte(strings.Repeat("x", MaxLineOctets))) }()
	c := newConn(client, newTranscript("test"), false)
	start := time.Now()
	if _, err := c.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err %v, want ErrLineTooLong", err)
	}
	if d := time.Since(start); d > DefaultTimeout/2 {
		t.Errorf("took %v", d)
	}
}

// TestContextInterruptsRead: a read blocked on a silent server ends as
// soon as the connection's context does, with ErrInterrupted, and later
// reads fail at once.
func TestContextInterruptsRead(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	c := newConn(client, newTranscript("test"), false)
	c.bind(ctx)
	time.AfterFunc(100*time.Millisecond, func() { cancel(errors.New("spec timeout occurred")) })
	start := time.Now()
	_, err := c.ReadLine()
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "spec timeout occurred") {
		t.Fatalf("err %v, want ErrInterrupted with the cause", err)
	}
	if d := time.Since(start); d > DefaultTimeout/2 {
		t.Errorf("interrupted after %v", d)
	}
	if err := c.Send("NOOP"); !errors.Is(err, ErrInterrupted) {
		t.Errorf("write after the interrupt: %v", err)
	}
}

// TestTrafficCounts counts a round trip per write the client waits on,
// however many lines the write holds and however many lines the answer
// has, and a connection per dial; reading on without writing is no new
// round trip.
func TestTrafficCounts(t *testing.T) {
	ctx := context.Background()
	tg, err := Open(ctx, Config{Profile: DefaultProfile})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	rec := tg.Recorder()
	before := rec.Traffic()
	c, err := tg.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		want Traffic // added since before
	}{
		{"greeting", func() error { return nil }, Traffic{1, 0}},
		{"CAPA, a multi-line answer", func() error { _, err := c.CmdMulti("CAPA"); return err }, Traffic{1, 1}},
		{"two commands", func() error {
			if _, err := c.Cmd("NOOP"); err != nil {
				return err
			}
			_, err := c.Cmd("NOOP")
			return err
		}, Traffic{1, 3}},
		{"two lines in one write, two replies", func() error {
			if err := c.SendRaw([]byte("NOOP\r\nNOOP\r\n")); err != nil {
				return err
			}
			for range 2 {
				if _, err := c.ReadReply(); err != nil {
					return err
				}
			}
			return nil
		}, Traffic{1, 4}},
		{"a second connection", func() error { _, err := tg.Dial(ctx); return err }, Traffic{2, 4}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := rec.Traffic()
		got.Connections -= before.Connections
		got.RoundTrips -= before.RoundTrips
		if got != s.want {
			t.Errorf("after %s: %+v, want %+v", s.name, got, s.want)
		}
	}
}

// TestSettleSessions: where the server locks the maildrop, the end of a
// spec half-closes each session in TRANSACTION and waits for the server
// to close it (the lock is then free for the next spec), an explicit
// Close likewise; a session still in AUTHORIZATION, or any session where
// the server takes no lock, is closed at once.
func TestSettleSessions(t *testing.T) {
	const lag = 150 * time.Millisecond // how long the server takes to let go
	for _, tc := range []struct {
		name             string
		settle, loggedIn bool
		explicit         bool
		wait             bool
	}{
		{"lock, TRANSACTION", true, true, false, true},
		{"lock, TRANSACTION, the spec closes it", true, true, true, true},
		{"lock, AUTHORIZATION", true, false, false, false},
		{"no lock", false, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				sc, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 64)
				for {
					if _, err := sc.Read(buf); err != nil {
						break // the client's FIN
					}
				}
				time.Sleep(lag)
				sc.Close()
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			rec := &Recorder{}
			c := newConn(nc, newTranscript("test"), false)
			c.guard = &LineGuard{rec: rec}
			c.seen.transaction = tc.loggedIn
			rec.track(c)
			if tc.settle {
				rec.SettleSessions()
			}
			begun := time.Now()
			if tc.explicit {
				c.Close()
			}
			tr := rec.EndSpec(true)
			took := time.Since(begun)
			switch {
			case tc.wait && took < lag:
				t.Errorf("ended after %v, before the server let go (%v)", took, lag)
			case !tc.wait && took >= lag:
				t.Errorf("ended after %v, waiting for the server", took)
			}
			if got := strings.Contains(tr, "half-closed"); got != tc.wait {
				t.Errorf("half-close in the transcript: %v, want %v:\n%s", got, tc.wait, tr)
			}
		})
	}
}
