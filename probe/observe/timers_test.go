package observe

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// durationParam reads a measured timer.
func durationParam(t *testing.T, got *report.Observed, key string) time.Duration {
	t.Helper()
	v, ok := got.Params[key].(string)
	if !ok {
		t.Fatalf("%s = %v (%T); not measured: %q; errors %q", key, got.Params[key], got.Params[key], got.Observation.NotMeasured[key], got.Observation.Errors)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return d
}

// checkNotice compares timers.notice and timers.notice_text with want.
func checkNotice(t *testing.T, got *report.Observed, want profile.Timers) {
	t.Helper()
	if n, ok := got.Params[keyNotice]; !ok || n != want.Notice {
		t.Errorf("%s = %v, want %v; method %q", keyNotice, n, want.Notice, got.Observation.Methods[keyNotice])
	}
	text, ok := got.Params[keyNoticeText]
	switch {
	case want.Notice && text != want.NoticeText:
		t.Errorf("%s = %q, want %q", keyNoticeText, text, want.NoticeText)
	case !want.Notice && ok:
		t.Errorf("%s = %q measured without a notice", keyNoticeText, text)
	}
}

// timerDifferences lists the comparison's differences on timer keys.
func timerDifferences(m report.ProfileMatch) []string {
	var out []string
	for _, d := range m.Differences {
		if strings.HasPrefix(d.Key, "timers.") {
			out = append(out, d.Text(m.Name))
		}
	}
	return out
}

// TestIdleTimersOnBundledServer measures the bundled server's timers at
// scale and checks that they come back as the server's profile says,
// quickly, and that the profile comparison agrees.
func TestIdleTimersOnBundledServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts reference servers")
	}
	tests := []struct {
		server  string
		factors [2]int64 // unauthenticated, authenticated: each lasts 1.5 s at scale
	}{
		{"exchange2010", [2]int64{40, 1200}}, // 60 s / 1800 s
		{"rfc1939", [2]int64{400, 400}},      // 600 s both, closed silently
		{"dovecot", [2]int64{120, 400}},      // 180 s / 600 s, another notice text
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			t.Parallel()
			prof, err := profile.Load(tt.server)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Run(context.Background(), Options{Config: harness.Config{TLS: harness.TLSNone, Profile: tt.server, ReferenceProfile: tt.server}})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range got.Observation.Errors {
				t.Errorf("measurement error: %s", e)
			}
			for i, k := range []struct {
				key  string
				want time.Duration
			}{{keyUnauthenticated, prof.Timers.Unauthenticated.D()}, {keyAuthenticated, prof.Timers.Authenticated.D()}} {
				d := durationParam(t, got, k.key)
				method := got.Observation.Methods[k.key]
				t.Logf("%s = %v: %s", k.key, d, method)
				if diff := (d - k.want).Abs(); diff > durationTolerance(k.want) {
					t.Errorf("%s = %v, want %v", k.key, d, k.want)
				}
				if !strings.Contains(method, fmt.Sprintf("at 1/%d scale", tt.factors[i])) {
					t.Errorf("%s method %q does not name the 1/%d scale", k.key, method, tt.factors[i])
				}
			}
			checkNotice(t, got, prof.Timers)
			for _, m := range got.Profiles {
				if m.Name == tt.server && len(timerDifferences(m)) > 0 {
					t.Errorf("differences from its own profile: %q", timerDifferences(m))
				}
			}
			// The step waits for the scaled timers (about 1.5 s), never
			// for the real ones (minutes). The bound leaves room for the
			// other steps under -race on a loaded machine.
			if got.Observation.Seconds > 30 {
				t.Errorf("the observation took %.1f s", got.Observation.Seconds)
			}
			sugg, err := profile.Parse(got.SuggestedProfile)
			if err != nil {
				t.Fatal(err)
			}
			if sugg.Timers.Notice != prof.Timers.Notice || sugg.Timers.NoticeText != prof.Timers.NoticeText ||
				!sameDuration(sugg.Timers.Authenticated.String(), prof.Timers.Authenticated.String()) {
				t.Errorf("suggested timers %+v, profile %+v", sugg.Timers, prof.Timers)
			}
		})
	}
}

// TestIdleTimersRemote measures a bundled server with short timers as if
// it were a remote host: only with the slow permission, on real timers,
// both at once.
func TestIdleTimersRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("starts reference servers")
	}
	const (
		unauth = time.Second
		auth   = 1500 * time.Millisecond
		// A loopback close lands within a few milliseconds of the
		// timer; a rounding step of 100 ms either way is allowed. This
		// is far tighter than the profile comparison's 2 s, so that a
		// swapped or mis-measured timer fails here.
		slack = 100 * time.Millisecond
	)
	tests := []struct {
		name   string
		notice bool
		slow   bool
	}{
		{"notice on", true, true},
		{"notice off", false, true},
		{"without --slow", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeProfile(t, "exchange2010", func(p *profile.Profile) {
				p.Timers.Unauthenticated, p.Timers.Authenticated = profile.Duration(unauth), profile.Duration(auth)
				p.Timers.Notice = tt.notice
				if !tt.notice {
					p.Timers.NoticeText = ""
				}
			})
			prof, err := profile.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			srv, err := harness.Open(ctx, harness.Config{TLS: harness.TLSNone, Profile: path})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			a, err := srv.Account(ctx)
			if err != nil {
				t.Fatal(err)
			}
			host, port, _ := strings.Cut(srv.PlainAddr(), ":")
			p := 0
			fmt.Sscan(port, &p)
			// The loopback server's certificate is its own: trusted here
			// so that the STLS step does not count as a failed measurement.
			cfg := harness.Config{Host: host, Port: p, TLS: harness.TLSNone, User: a.User, Password: a.Password,
				InsecureSkipVerify: true, Profile: path, Allow: harness.Permissions{Slow: tt.slow}}
			got, err := Run(ctx, Options{Config: cfg, Target: srv.PlainAddr()})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range got.Observation.Errors {
				t.Errorf("measurement error: %s", e)
			}
			if !tt.slow {
				for _, k := range timerKeys {
					if _, ok := got.Params[k]; ok || !strings.Contains(got.Observation.NotMeasured[k], "--slow") {
						t.Errorf("%s = %v, not measured %q", k, got.Params[k], got.Observation.NotMeasured[k])
					}
				}
				return
			}
			for _, k := range []struct {
				key  string
				want time.Duration
			}{{keyUnauthenticated, unauth}, {keyAuthenticated, auth}} {
				d := durationParam(t, got, k.key)
				t.Logf("%s = %v: %s", k.key, d, got.Observation.Methods[k.key])
				if d < k.want-slack || d > k.want+slack {
					t.Errorf("%s = %v, want %v", k.key, d, k.want)
				}
				if !strings.Contains(got.Observation.Evidence[k.key], "server closed the connection") {
					t.Errorf("%s evidence:\n%s", k.key, got.Observation.Evidence[k.key])
				}
			}
			checkNotice(t, got, prof.Timers)
			for _, m := range got.Profiles {
				if m.Chosen && len(timerDifferences(m)) > 0 {
					t.Errorf("differences from the chosen profile: %q", timerDifferences(m))
				}
			}
			// Both timers at once: the longer one plus the other steps,
			// well under the 2.5 s of one after the other.
			if got.Observation.Seconds > 2.4 {
				t.Errorf("the observation took %.1f s", got.Observation.Seconds)
			}
		})
	}
}

func TestSameDuration(t *testing.T) {
	tests := []struct {
		observed, profile string
		want              bool
	}{
		{"1m0.4s", "60s", true},     // a 60 s timer measured over the network
		{"1m5s", "1m0s", true},      // 60 s at 1/1200 scale, rounded to 5 s
		{"1m6s", "1m0s", true},      // exactly 10 % of 60 s
		{"1m7s", "1m0s", false},     // past 10 %
		{"54s", "1m0s", true},       // 10 % the other way
		{"2.9s", "1s", true},        // under the 2 s floor
		{"3.1s", "1s", false},       // past it
		{"30m20s", "30m0s", true},   // 1800 s at scale, within 180 s
		{"11m0s", "10m0s", true},    // exactly 10 % of 600 s
		{"11m0.1s", "10m0s", false}, // past it
		{"10m0s", "30m0s", false},   // rfc1939 against Exchange
		{"3m0s", "10m0s", false},    // Dovecot's unauthenticated against rfc1939
		{"1m0s", "3m0s", false},     // Exchange's against Dovecot's
		{"soon", "1m0s", false},     // not a duration
		{"1m0s", "", false},         // the profile names none
	}
	for _, tt := range tests {
		if got := sameDuration(tt.observed, tt.profile); got != tt.want {
			t.Errorf("sameDuration(%q, %q) = %v, want %v", tt.observed, tt.profile, got, tt.want)
		}
	}
}

func TestRoundMeasured(t *testing.T) {
	tests := []struct {
		d, resolution, want time.Duration
	}{
		{60400 * time.Millisecond, remoteResolution, 60 * time.Second},               // step 1 s (1 % is 604 ms)
		{1003 * time.Millisecond, remoteResolution, time.Second},                     // step 100 ms
		{1540 * time.Millisecond, remoteResolution, 1500 * time.Millisecond},         // step 100 ms
		{180100 * time.Millisecond, remoteResolution, 180 * time.Second},             // step 2 s
		{61200 * time.Millisecond, 1200 * scaleNoise, 60 * time.Second},              // 51 ms at 1/1200: step 5 s
		{1801200 * time.Millisecond, 1200 * scaleNoise, 1800 * time.Second},          // step 20 s (1 % is 18 s)
		{600400 * time.Millisecond, 400 * scaleNoise, 600 * time.Second},             // step 10 s
		{63 * time.Second, 1200 * scaleNoise, 65 * time.Second},                      // 52.5 ms at 1/1200 is 65 s
		{7 * time.Millisecond, time.Millisecond, 7 * time.Millisecond},               // nothing to round
		{1234567 * time.Microsecond, 10 * time.Millisecond, 1240 * time.Millisecond}, // step 20 ms
	}
	for _, tt := range tests {
		if got := roundMeasured(tt.d, tt.resolution); got != tt.want {
			t.Errorf("roundMeasured(%v, %v) = %v, want %v", tt.d, tt.resolution, got, tt.want)
		}
	}
}

func TestScaleFactor(t *testing.T) {
	tests := []struct {
		timer time.Duration
		want  int64
	}{
		{1800 * time.Second, 1200},
		{600 * time.Second, 400},
		{60 * time.Second, 40},       // Exchange's unauthenticated timer: 1.5 s, not 50 ms
		{1500 * time.Millisecond, 1}, // short already
		{100 * time.Millisecond, 1},
	}
	for _, tt := range tests {
		if got := scaleFactor(tt.timer); got != tt.want {
			t.Errorf("scaleFactor(%v) = %d, want %d", tt.timer, got, tt.want)
		}
	}
}

// TestWaitBounds checks how long a remote measurement may wait, and that
// the default time limit covers it only when it will happen.
func TestWaitBounds(t *testing.T) {
	if got := waitLimit(60 * time.Second); got != 150*time.Second {
		t.Errorf("waitLimit(60s) = %v", got)
	}
	if got := waitLimit(0); got != 35*time.Minute {
		t.Errorf("waitLimit(0) = %v", got)
	}
	remote := harness.Config{Host: "h", Port: 110, User: "u", Password: "p", Profile: "exchange2010"}
	slow := remote
	slow.Allow.Slow = true
	dovecot := slow
	dovecot.Profile = "dovecot"
	missing := slow
	missing.Profile = "/nonexistent/profile.yaml"
	tests := []struct {
		name string
		cfg  harness.Config
		want time.Duration
	}{
		{"bundled", harness.Config{Profile: "exchange2010", Allow: harness.Permissions{Slow: true}}, DefaultTimeout},
		{"remote, not slow", remote, DefaultTimeout},
		{"remote, slow, 1800 s", slow, DefaultTimeout + 2*1800*time.Second + time.Minute},
		{"remote, slow, 600 s", dovecot, DefaultTimeout + 2*600*time.Second + time.Minute},
		{"remote, slow, no profile", missing, DefaultTimeout + 35*time.Minute + 30*time.Second},
	}
	for _, tt := range tests {
		if got := defaultTimeout(tt.cfg); got != tt.want {
			t.Errorf("%s: defaultTimeout = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSuggestTimers writes measured timers into a suggested profile.
func TestSuggestTimers(t *testing.T) {
	base, err := profile.Load("exchange2010")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params map[string]any
		want   profile.Timers
		note   string
	}{
		{"silent", map[string]any{keyUnauthenticated: "10m0s", keyAuthenticated: "10m0s", keyNotice: false},
			profile.Timers{Unauthenticated: profile.Duration(10 * time.Minute), Authenticated: profile.Duration(10 * time.Minute)}, ""},
		{"notice", map[string]any{keyUnauthenticated: "3m0s", keyAuthenticated: "1m0.4s", keyNotice: true, keyNoticeText: "Bye."},
			profile.Timers{Unauthenticated: profile.Duration(3 * time.Minute), Authenticated: profile.Duration(60400 * time.Millisecond), Notice: true, NoticeText: "Bye."}, ""},
		{"notice without text", map[string]any{keyNotice: true, keyNoticeText: ""},
			profile.Timers{Notice: true}, "timers.notice_text: the notice had no text after its status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y, err := Suggest(tt.params, nil, base, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := profile.Parse(y)
			if err != nil {
				t.Fatal(err)
			}
			if got.Timers != tt.want {
				t.Errorf("timers %+v, want %+v\n%s", got.Timers, tt.want, y)
			}
			if !strings.Contains(string(y), tt.note) {
				t.Errorf("no note %q:\n%s", tt.note, y)
			}
			if m := Compare(tt.params, got); len(m.Differences) != 0 {
				t.Errorf("the suggested profile differs from what it was made of: %+v", m.Differences)
			}
		})
	}
}
