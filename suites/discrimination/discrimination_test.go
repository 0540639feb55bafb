package discrimination

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/contract"
)

// buildSuite compiles the conformance suite once for all cases.
func buildSuite(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "conformance.test")
	cmd := exec.Command("go", "test", "-c", "-o", bin, "github.com/pop3conformance/pop3conformance/suites/conformance")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the suite: %v\n%s", err, out)
	}
	return bin
}

func TestSpecsDiscriminate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite several times")
	}
	bin := buildSuite(t)
	for _, tc := range Cases {
		t.Run(tc.Server+"-judged-as-"+tc.Expect, func(t *testing.T) {
			t.Parallel()
			failed := runSuite(t, bin, tc.Server, tc.Expect)
			var want []string
			for id := range tc.Deviations {
				want = append(want, id)
			}
			sort.Strings(want)
			if !slices.Equal(failed, want) {
				var extra, missing []string
				for _, id := range failed {
					if _, ok := tc.Deviations[id]; !ok {
						extra = append(extra, id)
					}
				}
				for _, id := range want {
					if !slices.Contains(failed, id) {
						missing = append(missing, id+" ("+tc.Deviations[id]+")")
					}
				}
				t.Errorf("server %s judged as %s:\n  deviations the specs missed: %s\n  unexpected deviations: %s",
					tc.Server, tc.Expect, strings.Join(missing, "; "), strings.Join(extra, ", "))
			}
		})
	}
}

// runSuite runs the compiled suite and returns the sorted requirement IDs
// of every failed spec.
func runSuite(t *testing.T, bin, server, expect string) []string {
	t.Helper()
	report := filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--ginkgo.label-filter=!slow", "--ginkgo.json-report="+report, "--ginkgo.silence-skips")
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = append(os.Environ(), "POP3_PROFILE="+expect, "POP3_REFERENCE_PROFILE="+server)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("suite timed out:\n%s", tail(out))
	}
	_ = err // failures are the point; the report says which
	data, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("no report (%v); suite output:\n%s", rerr, tail(out))
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range reports {
		if !r.SuiteSucceeded && len(r.SpecialSuiteFailureReasons) > 0 {
			t.Fatalf("suite did not run cleanly: %v\n%s", r.SpecialSuiteFailureReasons, tail(out))
		}
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				if s.State.Is(types.SpecStateFailureStates) {
					t.Fatalf("%s failed: %s", s.LeafNodeType, s.Failure.Message)
				}
				continue
			}
			if !s.State.Is(types.SpecStateFailureStates) {
				continue
			}
			for _, l := range s.Labels() {
				if id, ok := contract.ReqID(l); ok {
					seen[id] = true
				}
			}
		}
	}
	var ids []string
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func tail(b []byte) string {
	const n = 4000
	if len(b) > n {
		return "..." + string(b[len(b)-n:])
	}
	return string(b)
}
