package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// fakeObserver measures nothing but echoes both passwords everywhere an
// observation can carry text: parameters, methods, evidence, the profile
// comparison and the suggested profile.
func fakeObserver(_ context.Context, req Request, _ *harness.Facts) (*report.Observed, error) {
	return &report.Observed{
		Params: map[string]any{
			"greeting":           "hello " + req.Password,
			"capa_before_login":  []string{"X-" + req.Password2},
			"max_command_octets": 512,
		},
		Observation: report.Observation{
			Seconds: 0.1, Connections: 3,
			Methods:     map[string]string{"greeting": "sent PASS " + req.Password},
			NotMeasured: map[string]string{"lock": req.Password2},
			Evidence:    map[string]string{"greeting": "C: PASS " + req.Password + "\nS: +OK " + req.Password2},
			Errors:      []string{"PASS " + req.Password2},
		},
		Profiles: []report.ProfileMatch{{Name: "exchange2010", Chosen: true, Compared: 1,
			Differences: []report.ProfileDifference{{Key: "greeting", Observed: req.Password, Profile: "x"}}}},
		SuggestedProfile: []byte("name: observed\ngreeting: " + req.Password + "\nimplementation: " + req.Password2 + "\n"),
	}, nil
}

// TestNoCredentialsInAnyOutput runs the probe with every format, the
// observation step and both progress displays, and greps every produced
// file and the console for both passwords.
func TestNoCredentialsInAnyOutput(t *testing.T) {
	for _, tty := range []bool{false, true} {
		for _, host := range []string{"good", "deviant"} {
			name := host + map[bool]string{false: " lines", true: " tty"}[tty]
			t.Run(name, func(t *testing.T) {
				out := t.TempDir()
				pwFile := filepath.Join(t.TempDir(), "pw2")
				if err := os.WriteFile(pwFile, []byte(password2+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				var stdout, stderr bytes.Buffer
				code := Main(context.Background(), []string{"--host", host, "--user", "alice", "--password-env", "PW",
					"--user2", "bob", "--password2-file", pwFile, "--out", out}, Env{
					Stdout: &stdout, Stderr: &stderr,
					Getenv:   func(k string) string { return map[string]string{"PW": password}[k] },
					Runner:   fakeRunner(nil),
					Observer: fakeObserver,
					TTY:      func() bool { return tty },
					Catalog:  testCat(t),
				})
				if want := map[string]int{"good": ExitConformant, "deviant": ExitDeviates}[host]; code != want {
					t.Errorf("exit %d, want %d\n%s%s", code, want, stdout.String(), stderr.String())
				}
				files, _ := filepath.Glob(filepath.Join(out, "*"))
				names := map[string]bool{}
				for _, f := range files {
					names[filepath.Base(f)] = true
				}
				for _, f := range report.Formats {
					if !names[f.FileName()] {
						t.Errorf("%s not written", f.FileName())
					}
				}
				if !names[report.ObservedProfileFile] {
					t.Errorf("%s not written (got %v)", report.ObservedProfileFile, names)
				}
				outputs := map[string]string{"stdout": stdout.String(), "stderr": stderr.String()}
				for _, f := range files {
					data, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					outputs[filepath.Base(f)] = string(data)
				}
				for where, text := range outputs {
					for _, pw := range []string{password, password2} {
						if strings.Contains(text, pw) {
							t.Errorf("%s holds a password", where)
						}
					}
				}
				// The redaction left a mark where the secrets were.
				if !strings.Contains(outputs["report.json"], "redacted") || !strings.Contains(outputs[report.ObservedProfileFile], report.Redacted) {
					t.Error("report.json shows no redaction: did the fake echo reach it?")
				}
				if host == "deviant" && !strings.Contains(outputs["stderr"], report.Redacted) {
					t.Errorf("stderr shows no redaction:\n%s", outputs["stderr"])
				}
			})
		}
	}
}

func TestCountdown(t *testing.T) {
	tests := []struct {
		name    string
		s       SpecStart
		elapsed time.Duration
		want    string
	}{
		{"waiting on a timer", SpecStart{Wait: 10 * time.Minute, Timeout: 45 * time.Minute}, 90 * time.Second, "server timer: 8m30s left"},
		{"past the timer", SpecStart{Wait: time.Minute, Timeout: 45 * time.Minute}, 2 * time.Minute, "past the server timer, time limit in 43m0s"},
		{"quick spec", SpecStart{Timeout: 2 * time.Minute}, time.Second, ""},
		{"long spec", SpecStart{Timeout: 2 * time.Minute}, 5 * time.Second, "5s, time limit in 1m55s"},
		{"over time", SpecStart{Timeout: 2 * time.Minute}, 3 * time.Minute, ""},
	}
	for _, tt := range tests {
		if got := countdown(tt.s, tt.elapsed); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestProgressDisplays(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		tty   bool
		want  []string
		empty bool
	}{
		{name: "plain lines", want: []string{"running 2 specs", "waiting up to 1m0s on a server timer", "[1/2] conformant     V0001", "measuring server parameters"}},
		{name: "tty bar", tty: true, want: []string{"1/2", "V0008", "ran 2 specs", "measuring server parameters"}},
		{name: "quiet", args: []string{"--quiet"}, tty: true, empty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append([]string{"--out", t.TempDir(), "--format", "json"}, tt.args...), Env{
				Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" },
				Runner: fakeRunner(nil), Observer: fakeObserver, TTY: func() bool { return tt.tty }, Catalog: testCat(t),
			})
			if code != ExitConformant {
				t.Fatalf("exit %d\n%s", code, stderr.String())
			}
			if tt.empty && stderr.Len() > 0 {
				t.Errorf("--quiet printed %q", stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func TestETA(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var c etaClock
	c.start(t0)
	for _, tc := range []struct {
		elapsed     time.Duration
		done, total int
		want        string
	}{
		{10 * time.Second, 2, 100, ""}, // too early to tell
		{10 * time.Second, 10, 100, "about 1m30s left"},
		{50 * time.Second, 50, 200, "about 2m30s left"},
		{60 * time.Second, 100, 100, ""}, // done
	} {
		if got := c.left(t0.Add(tc.elapsed), tc.done, tc.total); got != tc.want {
			t.Errorf("after %v, %d of %d: %q, want %q", tc.elapsed, tc.done, tc.total, got, tc.want)
		}
	}
}
