package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// writeProfile writes a bundled profile changed by mutate to a file.
func writeProfile(t *testing.T, base string, mutate func(p *profile.Profile)) string {
	t.Helper()
	p, err := profile.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	mutate(p)
	p.Name = base + "-variant"
	data, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "variant.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMeasuresHowTheServerWasStarted starts the bundled server as each
// profile says and checks that the measured parameters say the same.
func TestMeasuresHowTheServerWasStarted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts reference servers")
	}
	tests := []struct {
		name string
		// server is how the bundled server behaves; the specs' profile
		// stays exchange2010.
		server func(t *testing.T) string
		want   map[string]any
	}{
		{"exchange2007 (47)", func(*testing.T) string { return "exchange2007" }, map[string]any{
			"max_command_octets": 47, "max_command_octets_bound": "exact", "separators": "space-or-tab",
			"tab_separates": true, "multiple_spaces_separate": true, "unknown_user_reply": "ok",
			"apop": false, "sasl": []string{"NTLM", "PLAIN"}, "lock": "none", "exact_sizes": false,
			"storage_block_octets": 1024, "uid.format": "decimal-increasing", "stls": true,
			"greeting": "The Microsoft Exchange POP3 service is ready.", "implementation": "",
			"plaintext_before_tls": true, "greeting_backend": false, "overlong_command": "close", "capa_order": "exchange",
			"replies.quit":            "+OK Microsoft Exchange Server 2007 POP3 server signing off.",
			"replies.overlong":        "-ERR Protocol error. Connection is closed. 10",
			"replies.pass_failed":     "-ERR Logon failure: unknown user name or bad password.",
			"replies.unknown_command": "-ERR Protocol error. 19", "replies.wrong_state": "-ERR Command is not valid in this state.",
			"replies.capa": "+OK", "replies.retr": "+OK", "replies.user": "+OK", "replies.pass_ok": "+OK User successfully logged on.",
		}},
		{"exchange2010 (512)", func(*testing.T) string { return "exchange2010" }, map[string]any{
			"max_command_octets": 512, "max_argument_chars": 0, "separators": "space-or-tab", "lock": "none",
		}},
		{"1024", func(t *testing.T) string {
			return writeProfile(t, "exchange2010", func(p *profile.Profile) { p.MaxCommandOctets = 1024 })
		}, map[string]any{"max_command_octets": 1024, "max_argument_chars": 0}},
		{"rfc1939 refuses TAB", func(*testing.T) string { return "rfc1939" }, map[string]any{
			"max_command_octets": 255, "separators": "single-space", "tab_separates": false,
			"multiple_spaces_separate": false, "unknown_user_reply": "err", "apop": true, "apop_timestamp": true,
			"apop_login": true, "lock": "exclusive", "exact_sizes": true, "sasl": []string{"PLAIN"},
			"implementation": "pop3conformance-reference", "greeting": "POP3 server ready",
			"overlong_command": "err", "capa_order": "tags", "replies.unknown_command": "-ERR Unknown command",
			"replies.capa": "+OK Capability list follows",
			// "+OK 259 octets" names the size, and USER of an unknown
			// name is refused, so no PASS follows it.
			"replies.retr": nil, "replies.pass_failed": nil,
		}},
		{"Exchange Online backend name", func(t *testing.T) string {
			return writeProfile(t, "exchange2010", func(p *profile.Profile) { p.GreetingBackend = true })
		}, map[string]any{"greeting_backend": true, "greeting": "The Microsoft Exchange POP3 service is ready."}},
		{"40-character arguments", func(t *testing.T) string {
			return writeProfile(t, "exchange2010", func(p *profile.Profile) { p.MaxArgumentChars = 40 })
		}, map[string]any{"max_command_octets": 512, "max_argument_chars": 40}},
		{"no plaintext before TLS", func(t *testing.T) string {
			return writeProfile(t, "exchange2010", func(p *profile.Profile) { p.PlaintextBeforeTLS = false })
		}, map[string]any{"plaintext_before_tls": false, "sasl": []string{"NTLM", "PLAIN"}, "lock": "none",
			"replies.plaintext_refused": "-ERR Command is not valid in this state.", "capa_order": "exchange"}},
		{"over-long line answered, session goes on", func(t *testing.T) string {
			return writeProfile(t, "exchange2010", func(p *profile.Profile) { p.OverlongCommand = profile.OverlongErr })
		}, map[string]any{"overlong_command": "err", "max_command_octets": 512}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each observation waits ~1.5 s for the scaled idle timers
			server := tt.server(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			got, err := Run(ctx, Options{Config: harness.Config{TLS: harness.TLSNone, Profile: "exchange2010", ReferenceProfile: server}})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range got.Observation.Errors {
				t.Errorf("measurement error: %s", e)
			}
			for k := range tt.want {
				if tt.want[k] == nil {
					if v, ok := got.Params[k]; ok {
						t.Errorf("%s = %v, want it not measured", k, v)
					}
					delete(tt.want, k)
				}
			}
			for k, want := range tt.want {
				if v, ok := got.Params[k]; !ok || report.ShowValue(v) != report.ShowValue(want) {
					t.Errorf("%s = %v (%T), want %v; method %q, not measured %q", k, v, v, want, got.Observation.Methods[k], got.Observation.NotMeasured[k])
				}
			}
			if got.Observation.Connections > DefaultMaxConnections {
				t.Errorf("%d connections", got.Observation.Connections)
			}
			if _, err := profile.Parse(got.SuggestedProfile); err != nil {
				t.Errorf("suggested profile: %v\n%s", err, got.SuggestedProfile)
			}
			// The fixture passwords never show, however the evidence was
			// gathered.
			acc, _ := harness.FixtureAccount("alice")
			for k, ev := range got.Observation.Evidence {
				if strings.Contains(ev, acc.Password) {
					t.Errorf("evidence %s holds the password:\n%s", k, ev)
				}
			}
			if strings.Contains(string(got.SuggestedProfile), acc.Password) {
				t.Error("the suggested profile holds the password")
			}
		})
	}
}

// TestClosestProfile observes the bundled server under each bundled
// profile and wants that profile closest: with no differences, except
// where the bundled server cannot do what the profile says (dovecot:
// SASL LOGIN, and a close after 22 errors past the facts' count).
// Under the Exchange profiles every reply text recorded must match.
func TestClosestProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts reference servers")
	}
	tests := []struct {
		server string
		// differences are the keys allowed to differ from the server's own
		// profile.
		differences []string
	}{
		{"exchange2007", nil},
		{"exchange2010", nil},
		{"rfc1939", nil},
		{"dovecot", []string{"close_after_errors_transaction", "sasl"}},
	}
	for _, tt := range tests {
		server := tt.server
		t.Run(server, func(t *testing.T) {
			t.Parallel() // each observation waits ~1.5 s for the scaled idle timers
			got, err := Run(context.Background(), Options{Config: harness.Config{TLS: harness.TLSNone, Profile: "exchange2010", ReferenceProfile: server}})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Profiles) == 0 || got.Profiles[0].Name != server {
				t.Fatalf("closest %+v, want %s", got.Profiles, server)
			}
			var keys []string
			for _, d := range got.Profiles[0].Differences {
				keys = append(keys, d.Key)
			}
			if strings.Join(keys, " ") != strings.Join(tt.differences, " ") {
				t.Errorf("closest %s differs in %v, want %v: %+v", server, keys, tt.differences, got.Profiles[0])
			}
			if m := got.Profiles[0]; strings.HasPrefix(server, "exchange") && (m.TextsCompared < 10 || m.TextsMatching != m.TextsCompared) {
				t.Errorf("%s: reply texts %d of %d match, want at least 10 compared", server, m.TextsMatching, m.TextsCompared)
			}
			for _, m := range got.Profiles {
				if m.Chosen != (m.Name == "exchange2010") {
					t.Errorf("%s chosen=%v", m.Name, m.Chosen)
				}
			}
		})
	}
}

func TestUIDShape(t *testing.T) {
	tests := []struct {
		uids     []string
		dec, inc bool
	}{
		{[]string{"1", "2", "10"}, true, true},
		{[]string{"9", "10"}, true, true},
		{[]string{"10", "9"}, true, false},
		{[]string{"5", "5"}, true, false},
		{[]string{"000000016b0738f5", "000000026b0738f5"}, false, true},
		{[]string{"b", "a"}, false, false},
	}
	for _, tt := range tests {
		if dec, inc := uidShape(tt.uids); dec != tt.dec || inc != tt.inc {
			t.Errorf("%v: dec %v inc %v, want %v %v", tt.uids, dec, inc, tt.dec, tt.inc)
		}
	}
}

func TestSplitGreeting(t *testing.T) {
	tests := []struct{ in, text, stamp string }{
		{"POP3 server ready <1896.697170952@dbc.mtview.ca.us>", "POP3 server ready", "<1896.697170952@dbc.mtview.ca.us>"},
		{"Dovecot (Debian) ready.", "Dovecot (Debian) ready.", ""},
		{"ready <not a stamp>", "ready <not a stamp>", ""},
	}
	for _, tt := range tests {
		if text, stamp := splitGreeting(tt.in); text != tt.text || stamp != tt.stamp {
			t.Errorf("%q: %q %q", tt.in, text, stamp)
		}
	}
}

func TestLineForms(t *testing.T) {
	for _, f := range []*lineForm{userForm(), shortArgsForm()} {
		for n := MinCommandOctets; n <= 300; n++ {
			if l := f.long(n); len(l)+2 != n || strings.Contains(l, "  ") || strings.HasSuffix(l, " ") {
				t.Fatalf("%s(%d) = %q (%d octets)", f.name, n, l, len(l)+2)
			}
		}
		for _, l := range strings.Fields(f.long(200))[1:] {
			if f.name == "XPRB" && len(l) > 3 {
				t.Fatalf("argument %q is long", l)
			}
		}
	}
}

func TestCompareAndSuggest(t *testing.T) {
	p, _ := profile.Load("exchange2010")
	params := map[string]any{"max_command_octets": 70000, "separators": "single-space", "capabilities": []string{"UIDL", "TOP", "USER", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"}, "storage_block_octets": 1024}
	m := Compare(params, p)
	var texts []string
	for _, d := range m.Differences {
		texts = append(texts, d.Text(m.Name))
	}
	want := []string{"separators: observed single-space, profile exchange2010 says space-or-tab", "max_command_octets: observed 70000, profile exchange2010 says 512",
		"capabilities: observed [UIDL TOP USER RESP-CODES PIPELINING AUTH-RESP-CODE], profile exchange2010 says [TOP UIDL USER]"}
	if m.Compared != 4 || m.Matching != 1 || strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("%+v\n%q", m, texts)
	}
	y, err := Suggest(params, map[string]string{"lock": "needs --allow-disruptive"}, p, "test", report.Secrets{"wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := profile.Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	// max_command_octets has no bound, so it is no limit to expect.
	if got.Known("max_command_octets") || got.Separators != profile.SeparatorsSingleSpace || !strings.Contains(string(y), "#   lock: needs --allow-disruptive") || !strings.Contains(string(y), "#   max_command_octets: measured 70000 octets") {
		t.Errorf("suggested:\n%s", y)
	}
	// Only measured keys are said.
	for _, k := range []string{"stls", "close_after_errors", "sasl", "exact_sizes", "timers.unauthenticated"} {
		if got.Known(k) {
			t.Errorf("the suggested profile says %s:\n%s", k, y)
		}
	}
	params["max_command_octets_bound"] = BoundExact
	y, err = Suggest(params, nil, p, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = profile.Parse(y); err != nil || got.MaxCommandOctets != 65536 || !strings.Contains(string(y), "measured 70000; profiles allow 40..65536") {
		t.Errorf("suggested (%v):\n%s", err, y)
	}
}

// TestRemoteIsReadonlyAndRedacted audits a bundled server as if it were a
// remote host: the lock is measured only with the disruptive permission,
// and the account's password shows nowhere in what the step returns.
func TestRemoteIsReadonlyAndRedacted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reference server")
	}
	ctx := context.Background()
	srv, a, p := bundledRemote(t, "exchange2010")
	for _, disruptive := range []bool{false, true} {
		cfg := harness.Config{Host: "127.0.0.1", Port: p, TLS: harness.TLSNone, User: a.User, Password: a.Password,
			Profile: "exchange2010", Allow: harness.Permissions{Disruptive: disruptive}}
		got, err := Run(ctx, Options{Config: cfg, Target: srv.PlainAddr()})
		if err != nil {
			t.Fatal(err)
		}
		_, measured := got.Params["lock"]
		if measured != disruptive {
			t.Errorf("disruptive=%v: lock measured=%v (%q)", disruptive, measured, got.Observation.NotMeasured["lock"])
		}
		if got.Params["max_command_octets"] != 512 || got.Params["exact_sizes"] != false {
			t.Errorf("params %v", got.Params)
		}
		data, _ := json.Marshal(got)
		if bytes.Contains(data, []byte(a.Password)) || bytes.Contains(got.SuggestedProfile, []byte(a.Password)) {
			t.Errorf("the password %q shows in the observation", a.Password)
		}
	}
}

// TestRealExchangeDefaults observes the bundled server set as a real
// Exchange 2010 runs by default where the exchange2010 profile keeps
// the document's or the suite's choice (USER refused before TLS, TAB
// ending the keyword only, a close after the 3rd invalid command and
// the 4th failed login), judged by rfc1939: exchange2010 is still
// closest.
func TestRealExchangeDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reference server")
	}
	server := writeProfile(t, "exchange2010", func(p *profile.Profile) {
		p.PlaintextBeforeTLS = false
		p.Separators = profile.SeparatorsTabEndsKeyword
		p.CloseAfterInvalidCommands = 3
		p.CloseAfterFailedLogins = 4
	})
	got, err := Run(context.Background(), Options{Config: harness.Config{TLS: harness.TLSNone, Profile: "rfc1939", ReferenceProfile: server}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Profiles[0].Name != "exchange2010" {
		t.Errorf("closest %+v, want exchange2010", got.Profiles)
	}
	for k, want := range map[string]any{"capa_order": "exchange", "overlong_command": "close", "replies.plaintext_refused": "-ERR Command is not valid in this state."} {
		if v := got.Params[k]; v != want {
			t.Errorf("%s = %v, want %v (%s)", k, v, want, got.Observation.NotMeasured[k])
		}
	}
}

// TestTextsWeighLightly ranks made-up observations: reply texts tell
// apart profiles whose parameters tie, and never outweigh a parameter
// more that matches; a profile that keeps the server's own wording
// compares no text.
func TestTextsWeighLightly(t *testing.T) {
	exchangeTexts := map[string]any{
		"replies.unknown_command": "-ERR Protocol error. 19",
		"replies.wrong_state":     "-ERR Command is not valid in this state.",
		"replies.pass_ok":         "+OK User successfully logged on.",
		"replies.capa":            "+OK",
		"replies.overlong":        "-ERR Protocol error. Connection is closed. 10",
	}
	with := func(base map[string]any, more map[string]any) map[string]any {
		out := map[string]any{}
		for _, m := range []map[string]any{base, more} {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name    string
		params  map[string]any
		closest string
	}{
		// No line limit measured: only the QUIT text tells the versions apart.
		{"2007 by its QUIT text", with(exchangeTexts, map[string]any{"overlong_command": "close", "capa_order": "exchange",
			"replies.quit": "+OK Microsoft Exchange Server 2007 POP3 server signing off."}), "exchange2007"},
		{"2010 by its QUIT text", with(exchangeTexts, map[string]any{"overlong_command": "close", "capa_order": "exchange",
			"replies.quit": "+OK Microsoft Exchange Server 2010 POP3 server signing off."}), "exchange2010"},
		// The 47-octet limit outweighs the 2010 QUIT text.
		{"2007 by its line limit", with(exchangeTexts, map[string]any{"max_command_octets": 47,
			"replies.quit": "+OK Microsoft Exchange Server 2010 POP3 server signing off."}), "exchange2007"},
		// Exchange's texts and CAPA order do not outweigh two RFC 1939
		// parameters.
		{"rfc1939 with Exchange texts", with(exchangeTexts, map[string]any{"overlong_command": "err", "separators": "single-space",
			"capa_order": "exchange"}), "rfc1939"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CompareProfiles(tt.params, "")
			if err != nil {
				t.Fatal(err)
			}
			if got[0].Name != tt.closest {
				t.Errorf("closest %s, want %s: %+v", got[0].Name, tt.closest, got)
			}
			for _, m := range got {
				if (m.Name == "rfc1939" || m.Name == "dovecot") && m.TextsCompared != 0 {
					t.Errorf("%s compares %d texts, but keeps the server's own wording", m.Name, m.TextsCompared)
				}
			}
		})
	}
}

func TestSplitBackend(t *testing.T) {
	tests := []struct {
		in, rest string
		backend  bool
	}{
		{"The Microsoft Exchange POP3 service is ready. [TQBOADIAUABSADAAMQBDAEEAMAAwADEANQAuAG4AYQBtAHAAcgBkADAAMQAuAHAAcgBvAGQALgBvAHUAdABsAG8AbwBrAC4AYwBvAG0A]",
			"The Microsoft Exchange POP3 service is ready.", true},
		{"The Microsoft Exchange POP3 service is ready.", "The Microsoft Exchange POP3 service is ready.", false},
		{"ready [not base64!]", "ready [not base64!]", false},
		{"ready [abc]", "ready [abc]", false},
	}
	for _, tt := range tests {
		if rest, b := splitBackend(tt.in); rest != tt.rest || b != tt.backend {
			t.Errorf("%q: %q %v", tt.in, rest, b)
		}
	}
}

func TestCapaOrder(t *testing.T) {
	tests := []struct {
		name  string
		lists map[string][]string
		want  string // "" when not measured
	}{
		{"Exchange after STLS", map[string][]string{"capa_before_login": {"TOP", "UIDL", "STLS"}, "capa_after_stls": {"TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER"}}, "exchange"},
		{"tags", map[string][]string{"capa_before_login": {"TOP", "USER", "RESP-CODES", "SASL PLAIN", "STLS", "IMPLEMENTATION x"}}, "tags"},
		{"both fit", map[string][]string{"capa_before_login": {"TOP", "UIDL", "STLS"}}, ""},
		{"Dovecot: neither", map[string][]string{"capa_before_login": {"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "USER", "SASL PLAIN LOGIN"}}, ""},
	}
	for _, tt := range tests {
		p := &prober{params: map[string]any{}, obs: report.Observation{Methods: map[string]string{}, NotMeasured: map[string]string{}}}
		for k, v := range tt.lists {
			p.params[k] = v
		}
		p.decideCapaOrder()
		if got, _ := p.params["capa_order"].(string); got != tt.want {
			t.Errorf("%s: capa_order %q, want %q (%s)", tt.name, got, tt.want, p.obs.NotMeasured["capa_order"])
		}
	}
}

func TestHasWord(t *testing.T) {
	tests := []struct {
		text, word string
		want       bool
	}{
		{"Command is not valid in this state.", "STAT", false},
		{"STAT is not valid in the AUTHORIZATION state", "STAT", true},
		{"Unknown command: XPRB", "xprb", true},
		{"alice.2 has 6 messages", "alice.2", true},
		{"Logged in.", "alice", false},
	}
	for _, tt := range tests {
		if got := hasWord(tt.text, tt.word); got != tt.want {
			t.Errorf("hasWord(%q, %q) = %v", tt.text, tt.word, got)
		}
	}
}

// refusingFront forwards loopback connections to upstream, except those
// refuse picks, which get a greeting of -ERR and a close, as a server at
// its connection limit answers.
func refusingFront(t *testing.T, upstream string, refuse func() bool) int {
	t.Helper()
	ln := serveFake(t, func(c net.Conn) {
		defer c.Close()
		if refuse() {
			_, _ = io.WriteString(c, "-ERR [SYS/TEMP] too many connections\r\n")
			return
		}
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			return
		}
		defer up.Close()
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(up, c)
			if tc, ok := up.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			close(done)
		}()
		_, _ = io.Copy(c, up)
		c.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestLoadRefusalsAreNoAnswers: connections refused as a server at its
// limit refuses them (now and then, or while the run's other sessions
// hold the slots) are tried again, so the measured parameters are those
// of a server that refuses nothing.
func TestLoadRefusalsAreNoAnswers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a reference server")
	}
	ctx := context.Background()
	srv, a, direct := bundledRemote(t, "exchange2010")
	config := func(port int) harness.Config {
		return harness.Config{Host: "127.0.0.1", Port: port, TLS: harness.TLSNone, User: a.User, Password: a.Password, Profile: "exchange2010"}
	}
	// The facts are measured before the shared sessions start, alone:
	// every run here takes the same.
	ft, err := harness.Open(ctx, config(direct))
	if err != nil {
		t.Fatal(err)
	}
	defer ft.Close()
	if err := ft.MeasureFacts(ctx); err != nil {
		t.Fatal(err)
	}
	facts := ft.Facts()
	measure := func(port int, awaitIdle func(context.Context) error) map[string]any {
		got, err := Run(ctx, Options{Config: config(port), Target: "front", Facts: &facts, AwaitIdle: awaitIdle})
		if err != nil {
			t.Fatal(err)
		}
		return got.Params
	}
	want := measure(direct, nil)

	// Every third connection refused, no other sessions to wait for.
	var n atomic.Int64
	port := refusingFront(t, srv.PlainAddr(), func() bool { return n.Add(1)%3 == 0 })
	if got := measure(port, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("every third connection refused: measured\n%v\nwant\n%v", got, want)
	}

	// Refused while "other sessions" run; AwaitIdle ends them.
	var busy atomic.Bool
	busy.Store(true)
	waited := 0
	port = refusingFront(t, srv.PlainAddr(), busy.Load)
	got := measure(port, func(context.Context) error { waited++; busy.Store(false); return nil })
	if waited != 1 {
		t.Errorf("AwaitIdle called %d times, want once", waited)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("refused until idle: measured\n%v\nwant\n%v", got, want)
	}
}
