package harness

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
)

// TestPreflight: whichever login fails, and whether the two accounts log
// in one after the other or at once, the message names that account and
// the settings to check. rfc1939 locks the maildrop, so the same account
// twice must not be logged in at once: the server must see one PASS per
// account and no second try, which a lock refusal would have caused.
func TestPreflight(t *testing.T) {
	prof, err := profile.Load("rfc1939")
	if err != nil {
		t.Fatal(err)
	}
	passes := &keywordCount{keyword: "PASS"}
	in := embed.StartTest(t, embed.Options{Profile: prof, Plain: embed.Loopback, Logger: slog.New(passes)})
	host, portText, _ := net.SplitHostPort(in.Plain)
	port, _ := strconv.Atoi(portText)
	tests := []struct {
		name                     string
		user, pass, user2, pass2 string
		want                     []string // "" for success
		passes                   int      // PASS commands the server sees; 0: not counted
	}{
		{"both right", "alice", "wonderland", "bob", "two words", nil, 2},
		{"first wrong", "alice", "nope", "bob", "two words", []string{"as alice", EnvUser + " and " + EnvPassword}, 0},
		{"second wrong", "alice", "wonderland", "bob", "nope", []string{"as bob", EnvUser2 + " and " + EnvPassword2}, 0},
		{"same account twice", "alice", "wonderland", "alice", "wonderland", nil, 2},
		{"one account", "alice", "wonderland", "", "", nil, 1},
	}
	for _, sessions := range []int{1, 4} {
		for _, tt := range tests {
			t.Run(tt.name+"/"+strconv.Itoa(sessions), func(t *testing.T) {
				cfg := Config{Host: host, Port: port, TLS: TLSNone, Profile: "rfc1939", Sessions: sessions,
					User: tt.user, Password: tt.pass, User2: tt.user2, Password2: tt.pass2}
				tg, err := Open(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer tg.Close()
				passes.reset()
				err = tg.Preflight(context.Background())
				if tt.want == nil {
					if err != nil {
						t.Fatalf("Preflight: %v", err)
					}
					if n := passes.get(); tt.passes > 0 && n != tt.passes {
						t.Errorf("the server saw PASS %d times, want %d", n, tt.passes)
					}
					return
				}
				if !errors.Is(err, ErrPreflight) {
					t.Fatalf("Preflight: %v, want a preflight error", err)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%v: lacks %q", err, w)
					}
				}
			})
		}
	}
}

// TestConcurrentLogins: the check that decides whether a run may share
// its specs among sessions says yes only where a second session of the
// account really opens while the first is logged in, and why not
// otherwise.
func TestConcurrentLogins(t *testing.T) {
	tests := []struct {
		profile  string
		maxConns int
		ok       bool
		why      string
	}{
		{"exchange2010", 0, true, "opened while the first was open"},
		{"rfc1939", 0, false, "second session of the account was refused: -ERR [IN-USE]"},
		{"exchange2010", 1, false, "second connection was refused: -ERR"},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+strconv.Itoa(tt.maxConns), func(t *testing.T) {
			prof, err := profile.Load(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			in := embed.StartTest(t, embed.Options{Profile: prof, Plain: embed.Loopback, MaxConnections: tt.maxConns})
			host, portText, _ := net.SplitHostPort(in.Plain)
			port, _ := strconv.Atoi(portText)
			tg, err := Open(context.Background(), Config{Host: host, Port: port, TLS: TLSNone, Profile: tt.profile, User: "alice", Password: "wonderland"})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			ok, why, err := tg.ConcurrentLogins(context.Background())
			if err != nil || ok != tt.ok || !strings.Contains(why, tt.why) {
				t.Errorf("ConcurrentLogins = %v, %q, %v; want %v, %q", ok, why, err, tt.ok, tt.why)
			}
			if got := tg.Recorder().Traffic().Connections; got != 2 {
				t.Errorf("%d connections counted, want 2", got)
			}
		})
	}
}

// keywordCount is a slog handler that counts the commands with one
// keyword the reference server parsed (its "command" debug records).
type keywordCount struct {
	keyword string
	n       atomic.Int64
}

func (k *keywordCount) Enabled(context.Context, slog.Level) bool { return true }

func (k *keywordCount) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "command" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "keyword" && a.Value.String() == k.keyword {
				k.n.Add(1)
			}
			return true
		})
	}
	return nil
}

func (k *keywordCount) WithAttrs([]slog.Attr) slog.Handler { return k }
func (k *keywordCount) WithGroup(string) slog.Handler      { return k }
func (k *keywordCount) reset()                             { k.n.Store(0) }
func (k *keywordCount) get() int                           { return int(k.n.Load()) }
