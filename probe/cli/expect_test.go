package cli

import (
	"html"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pop3conformance/pop3conformance/probe/report"
)

// TestExpectBaseline runs the fake server (V0008 deviates on host
// "deviant", nothing on "good") against baselines: only deviations the
// baseline does not list fail the run, accepted ones are marked in the
// reports, and listed statements that pass are warned about.
func TestExpectBaseline(t *testing.T) {
	tests := []struct {
		name         string
		host         string
		file         string // base name: .yaml reads as YAML
		baseline     string
		wantCode     int
		wantOut      string // substring of stdout
		wantErr      string // substring of stderr
		wantAccepted []string
		wantFixed    []string
	}{
		{name: "accepted deviation passes", host: "deviant", file: "baseline.txt",
			baseline: "# known\nV0008 unknown users get +OK by design\n",
			wantCode: ExitConformant, wantOut: "1 accepted, 0 new", wantAccepted: []string{"V0008"}},
		{name: "new deviation fails", host: "deviant", file: "baseline.txt", baseline: "V0001\n",
			wantCode: ExitDeviates, wantOut: "0 accepted, 1 new (V0008)", wantErr: "no longer deviates: V0001; trim the baseline", wantFixed: []string{"V0001"}},
		{name: "fixed statements are reported, exit unchanged", host: "good", file: "baseline.txt", baseline: "V0008 # was broken\nV0001\n",
			wantCode: ExitConformant, wantErr: "no longer deviate: V0001, V0008; trim the baseline", wantFixed: []string{"V0001", "V0008"}},
		{name: "YAML list with reasons", host: "deviant", file: "baseline.yaml",
			baseline: "- id: V0008\n  reason: unknown users get +OK by design\n- V0001\n",
			wantCode: ExitConformant, wantOut: "1 accepted, 0 new, 1 no longer deviate", wantAccepted: []string{"V0008"}, wantFixed: []string{"V0001"}},
		{name: "unknown ID is a usage error", host: "deviant", file: "baseline.txt", baseline: "V0008\nV9999 typo\n",
			wantCode: ExitUsage, wantErr: "not statement IDs of the catalogue (see pop3probe list): V9999"},
		{name: "malformed YAML is a usage error", host: "deviant", file: "baseline.yaml", baseline: "- [V0008\n",
			wantCode: ExitUsage, wantErr: "--expect: baseline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, []byte(tt.baseline), 0o644); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			r := run(t, map[string]string{"PW": password}, nil, "--host", tt.host, "--user", "alice", "--password-env", "PW", "--expect", path, "--out", out, "--format", "json,md,html", "--quiet")
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:%s\nstderr:%s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.wantOut) || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("want %q on stdout and %q on stderr\nstdout:%s\nstderr:%s", tt.wantOut, tt.wantErr, r.stdout, r.stderr)
			}
			if tt.wantCode == ExitUsage {
				return
			}
			rep, err := report.Load(filepath.Join(out, report.JSON.FileName()))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Expect == nil || !slices.Equal(rep.Expect.Accepted, tt.wantAccepted) || !slices.Equal(rep.Expect.Fixed, tt.wantFixed) {
				t.Errorf("report expect = %+v, want accepted %v fixed %v", rep.Expect, tt.wantAccepted, tt.wantFixed)
			}
			for _, id := range tt.wantAccepted {
				for _, f := range []report.Format{report.Markdown, report.HTML} {
					data, err := os.ReadFile(filepath.Join(out, f.FileName()))
					if err != nil {
						t.Fatal(err)
					}
					// html.UnescapeString: the HTML writes '+' as &#43;.
					if !strings.Contains(html.UnescapeString(string(data)), "accepted by the baseline: unknown users get +OK by design") {
						t.Errorf("%s does not mark %s accepted with its reason", f.FileName(), id)
					}
				}
			}
		})
	}
}

// TestExpectBaselineMissingFile: a baseline that cannot be read stops the
// run before any spec.
func TestExpectBaselineMissingFile(t *testing.T) {
	var got Request
	r := run(t, map[string]string{"PW": password}, &got, "--host", "deviant", "--user", "alice", "--password-env", "PW", "--expect", filepath.Join(t.TempDir(), "nope.txt"), "--out", t.TempDir())
	if r.code != ExitUsage || !strings.Contains(r.stderr, "reading the baseline") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got.Host != "" {
		t.Errorf("the suite ran (against %q) despite the unreadable baseline", got.Host)
	}
}
