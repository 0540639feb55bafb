package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/discrimination"
)

// TestProbeNamesExactlyTheDeviations runs the probe against the bundled
// server configured as one profile while expecting another, for every
// cross-profile case of the suite's discrimination test: the probe must
// exit 1 and its report must call exactly those statements deviating,
// each with the wire transcript as evidence.
func TestProbeNamesExactlyTheDeviations(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite once per case")
	}
	for _, tc := range discrimination.Cases {
		t.Run(tc.Server+"-as-"+tc.Expect, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			cmd := exec.Command(os.Args[0], "--profile", tc.Expect, "--reference-profile", tc.Server,
				"--format", "json,md", "--no-observe", "--quiet", "--out", out, "--timeout", "5m")
			cmd.Env = append(os.Environ(), envAsProbe+"=1")
			start := time.Now()
			console, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("exit %d, want 1 (a deviation)\n%s", code, console)
			}
			t.Logf("probe took %v", time.Since(start).Round(time.Millisecond))
			rep, err := report.Load(filepath.Join(out, report.JSON.FileName()))
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, st := range rep.Statements {
				if st.Verdict != verdict.Deviates {
					continue
				}
				got = append(got, st.ID)
				evidence := false
				for _, s := range st.Specs {
					evidence = evidence || (s.Verdict == verdict.Deviates && s.Transcript != "")
				}
				if !evidence {
					t.Errorf("%s deviates without a transcript as evidence", st.ID)
				}
			}
			for id := range tc.Deviations {
				want = append(want, id)
			}
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("deviating statements:\n got %v\nwant %v", got, want)
			}
		})
	}
}
