package observe

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// lineFake is a small POP3 server whose line handling is set per test:
// what real servers do with a long line that the probe must tell apart.
// It has no CAPA unless capa is set, never offers STLS, and takes any
// user name at USER.
type lineFake struct {
	// truncate > 0: a line over truncate octets (CRLF included) has its
	// first truncate-2 octets executed, the rest dropped silently.
	truncate int
	// split > 0: a line over split octets is read as two commands, its
	// first split-2 octets and the rest.
	split int
	// lineMax > 0: a line over lineMax octets gets -ERR (text
	// "Line too long" unless bare) and the session goes on.
	lineMax int
	// maxArg > 0: an argument over maxArg characters gets -ERR.
	maxArg int
	// bare: every -ERR is just "-ERR".
	bare bool
	capa bool
	// singleSpace: arguments are split at each SPACE (RFC 1939), so
	// "LIST  1" has an empty first argument.
	singleSpace bool
}

var fakeSizes = []int{259, 339, 21134}

func (f *lineFake) start(t *testing.T) int {
	return serveFake(t, f.serve).Addr().(*net.TCPAddr).Port
}

func (f *lineFake) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	send := func(l string) { w.WriteString(l + "\r\n") }
	fail := func(text string) {
		if f.bare || text == "" {
			send("-ERR")
		} else {
			send("-ERR " + text)
		}
	}
	send("+OK ready")
	w.Flush()
	authed, user := false, ""
	for {
		raw, err := r.ReadString('\n')
		if err != nil {
			return
		}
		text := strings.TrimRight(raw, "\r\n")
		lines := []string{text}
		switch {
		case f.truncate > 0 && len(text)+2 > f.truncate:
			lines = []string{text[:f.truncate-2]}
		case f.split > 0 && len(text)+2 > f.split:
			lines = []string{text[:f.split-2], text[f.split-2:]}
		case f.lineMax > 0 && len(text)+2 > f.lineMax:
			fail("Line too long")
			w.Flush()
			continue
		}
		for _, l := range lines {
			if f.command(l, &authed, &user, send, fail) {
				w.Flush()
				return
			}
		}
		w.Flush()
	}
}

// command answers one command line; true ends the session.
func (f *lineFake) command(l string, authed *bool, user *string, send, fail func(string)) bool {
	kw, rest, _ := strings.Cut(l, " ")
	args := strings.Fields(rest)
	if f.singleSpace && rest != "" {
		args = strings.Split(rest, " ")
	}
	for _, a := range args {
		if f.maxArg > 0 && len(a) > f.maxArg {
			fail("Argument too long")
			return false
		}
	}
	kw = strings.ToUpper(kw)
	switch {
	case kw == "QUIT":
		send("+OK bye")
		return true
	case kw == "CAPA" && f.capa:
		send("+OK")
		send("USER")
		send("UIDL")
		send(".")
	case !*authed && kw == "USER" && len(args) == 1:
		*user = args[0]
		send("+OK")
	case !*authed && kw == "PASS" && *user == "alice" && rest == "wonderland":
		*authed = true
		send("+OK logged in")
	case *authed && kw == "NOOP" && len(args) == 0:
		send("+OK")
	case *authed && kw == "STAT":
		send(fmt.Sprintf("+OK %d %d", len(fakeSizes), 259+339+21134))
	case *authed && kw == "LIST" && len(args) == 0:
		send("+OK")
		for i, n := range fakeSizes {
			send(fmt.Sprintf("%d %d", i+1, n))
		}
		send(".")
	case *authed && kw == "LIST" && len(args) == 1:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > len(fakeSizes) {
			fail("No such message")
			break
		}
		send(fmt.Sprintf("+OK %d %d", n, fakeSizes[n-1]))
	default:
		fail("Unknown command")
	}
	return false
}

// TestLineLimits measures fakes that handle long lines in each way a
// server can: the limits reported must be true or absent.
func TestLineLimits(t *testing.T) {
	tests := []struct {
		name string
		fake *lineFake
		// want: parameters that must be measured so; absent: that must
		// not be measured.
		want   map[string]any
		absent []string
	}{
		{"cuts silently at 129, bare -ERR", &lineFake{truncate: 129, bare: true, singleSpace: true},
			map[string]any{"max_command_octets_transaction": 129, "max_command_octets_transaction_bound": "exact"},
			[]string{"max_command_octets", "stls", "capabilities", "sasl"}},
		{"splits at 256, bare -ERR", &lineFake{split: 256, bare: true, singleSpace: true},
			map[string]any{"max_command_octets_transaction": 256, "max_command_octets_transaction_bound": "exact",
				"max_command_octets": 256, "max_command_octets_bound": "exact", "max_argument_chars": 0},
			nil},
		{"40-character arguments, 512-octet lines", &lineFake{lineMax: 512, maxArg: 40},
			map[string]any{"max_command_octets_transaction": 512, "max_command_octets_transaction_bound": "exact",
				"max_command_octets": 512, "max_command_octets_bound": "exact", "max_argument_chars": 40},
			nil},
		{"40-character arguments, 512-octet lines, one SPACE", &lineFake{lineMax: 512, maxArg: 40, singleSpace: true},
			map[string]any{"max_command_octets_transaction": 512, "max_command_octets_transaction_bound": "at-most",
				"max_command_octets": 512, "max_command_octets_bound": "at-most", "max_argument_chars": 40},
			nil},
		{"40-character arguments, 512-octet lines, bare -ERR", &lineFake{lineMax: 512, maxArg: 40, bare: true},
			map[string]any{"max_command_octets_transaction": 512, "max_command_octets_transaction_bound": "at-least"},
			[]string{"max_command_octets"}},
		{"40-character arguments, 512-octet lines, bare -ERR, one SPACE", &lineFake{lineMax: 512, maxArg: 40, bare: true, singleSpace: true},
			map[string]any{"max_command_octets_transaction": 47, "max_command_octets_transaction_bound": "at-least"},
			[]string{"max_command_octets", "max_argument_chars"}},
		{"no limit seen", &lineFake{capa: true},
			map[string]any{"max_command_octets_transaction": 8192, "max_command_octets_transaction_bound": "at-least",
				"max_command_octets": 8192, "max_command_octets_bound": "at-least", "max_argument_chars": 0, "capa": true},
			nil},
	}
	// The audited profile's limit is tried first (rfc1939: 255 octets,
	// exchange2010: 512, dovecot: 8192); whether it hits, misses or
	// lies outside the search, the result must be the same.
	for _, tt := range tests {
		for _, prof := range []string{"rfc1939", "exchange2010", "dovecot"} {
			t.Run(tt.name+"/"+prof, func(t *testing.T) {
				t.Parallel()
				checkLineLimits(t, tt.fake, prof, tt.want, tt.absent)
			})
		}
	}
}

func checkLineLimits(t *testing.T, fake *lineFake, prof string, want map[string]any, absent []string) {
	port := fake.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := harness.Config{Host: "127.0.0.1", Port: port, TLS: harness.TLSNone, User: "alice", Password: "wonderland", Profile: prof}
	got, err := Run(ctx, Options{Config: cfg, Target: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if v, ok := got.Params[k]; !ok || report.ShowValue(v) != report.ShowValue(w) {
			t.Errorf("%s = %v, want %v; method %q, not measured %q", k, v, w, got.Observation.Methods[k], got.Observation.NotMeasured[k])
		}
	}
	for _, k := range absent {
		if v, ok := got.Params[k]; ok {
			t.Errorf("%s measured: %v (%s)", k, v, got.Observation.Methods[k])
		}
	}
	if v, ok := got.Params["max_command_octets"]; ok && got.Params["max_command_octets_bound"] == BoundAtLeast && fake.truncate+fake.split+fake.lineMax > 0 {
		t.Errorf("max_command_octets %v at-least for a server with a limit", v)
	}
	if got.Observation.Connections > DefaultMaxConnections {
		t.Errorf("%d connections", got.Observation.Connections)
	}
	t.Logf("%d connections; methods: tx %q; auth %q", got.Observation.Connections, got.Observation.Methods["max_command_octets_transaction"], got.Observation.Methods["max_command_octets"])
	// The suggested profile says only what was measured.
	p, err := profile.Parse(got.SuggestedProfile)
	if err != nil {
		t.Fatalf("suggested profile: %v\n%s", err, got.SuggestedProfile)
	}
	// The fakes never close after errors: measured before the
	// specs, and said.
	if !p.Known("close_after_errors") || p.CloseAfterErrors != 0 {
		t.Errorf("the suggested profile does not say close_after_errors: 0:\n%s", got.SuggestedProfile)
	}
	unsaid := append([]string{"lock"}, absent...)
	if !fake.capa {
		// No CAPA: nothing says what STLS, SASL or the
		// capabilities are.
		unsaid = append(unsaid, "stls", "capabilities", "sasl", "implementation")
	}
	for _, k := range unsaid {
		if p.Known(k) {
			t.Errorf("the suggested profile says %s:\n%s", k, got.SuggestedProfile)
		}
	}
}
