package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/contract"
)

const expectedYAML = `# a comment
- id: RFC2449-9-registry
  spec: lists registered tags only
  reason: CAPA lists "CAPA"
  observed: "CAPA -> CAPA TOP"
`

func it(text string, state types.SpecState, labels ...string) types.SpecReport {
	return types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: text, State: state, LeafNodeLabels: labels}
}

// writeReport writes reports as Ginkgo's --json-report does.
func writeReport(t *testing.T, dir, name string, specs ...types.SpecReport) string {
	t.Helper()
	data, err := json.Marshal([]types.Report{{SuiteSucceeded: true, SpecReports: specs}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	registry := contract.ReqLabel("RFC2449-9-registry")
	other := contract.ReqLabel("RFC1939-5-stat-format")
	readonly := string(contract.Readonly)
	for _, tc := range []struct {
		name  string
		specs []types.SpecReport
		ok    bool
		line  string // a line the output must hold
	}{
		{"the listed deviation fails, the rest passes", []types.SpecReport{
			it("lists registered tags only", types.SpecStateFailed, readonly, registry),
			it("answers STAT", types.SpecStatePassed, readonly, other),
			it("skipped", types.SpecStateSkipped, readonly, other),
		}, true, "judge: 2 passed, 0 failed"},
		{"another spec fails", []types.SpecReport{
			it("lists registered tags only", types.SpecStateFailed, readonly, registry),
			it("answers STAT", types.SpecStateFailed, readonly, other),
		}, false, "UNEXPECTED FAILURE RFC1939-5-stat-format: answers STAT"},
		{"a spec times out", []types.SpecReport{
			it("lists registered tags only", types.SpecStateFailed, readonly, registry),
			it("answers STAT", types.SpecStateTimedout, readonly, other),
		}, false, "judge: 1 passed, 1 failed"},
		{"the listed deviation passes", []types.SpecReport{
			it("lists registered tags only", types.SpecStatePassed, readonly, registry),
		}, false, "EXPECTED DEVIATION NOW PASSES RFC2449-9-registry: lists registered tags only (update expected-deviations.yaml)"},
		{"the listed deviation did not run", []types.SpecReport{
			it("lists registered tags only", types.SpecStateSkipped, readonly, registry),
		}, false, "EXPECTED DEVIATION NOT RUN RFC2449-9-registry: lists registered tags only (skipped, renamed or removed?)"},
		{"the setup failed", []types.SpecReport{
			{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStateFailed},
			it("lists registered tags only", types.SpecStateFailed, readonly, registry),
		}, false, "BeforeSuite failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			exp := filepath.Join(dir, "expected.yaml")
			if err := os.WriteFile(exp, []byte(expectedYAML), 0o644); err != nil {
				t.Fatal(err)
			}
			rep := writeReport(t, dir, "report.json", tc.specs...)
			var out bytes.Buffer
			err := command([]string{"check", exp, rep}, &out)
			if (err == nil) != tc.ok {
				t.Errorf("error %v, want ok=%v\n%s", err, tc.ok, out.String())
			}
			if !strings.Contains(out.String(), tc.line) {
				t.Errorf("output lacks %q:\n%s", tc.line, out.String())
			}
		})
	}
}

func TestExpectedNeedsEveryField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "expected.yaml")
	if err := os.WriteFile(path, []byte("- id: X\n  spec: s\n  reason: r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadExpected(path); err == nil {
		t.Error("an entry without observed was accepted")
	}
}

func TestMutating(t *testing.T) {
	mut, slow, ref := string(contract.Mutating), string(contract.Slow), string(contract.ReferenceOnly)
	rep := writeReport(t, t.TempDir(), "specs.json",
		it("removes (a) message", types.SpecStatePassed, mut),
		it("waits", types.SpecStatePassed, mut, slow),
		it("needs the store", types.SpecStatePassed, mut, ref),
		it("reads", types.SpecStatePassed, string(contract.Readonly)),
	)
	var out bytes.Buffer
	if err := command([]string{"mutating", rep}, &out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "removes \\(a\\) message\n"; got != want {
		t.Errorf("mutating specs %q, want %q", got, want)
	}
}

// The list run-suite.sh judges by must load as it is.
func TestExpectedDeviationsLoad(t *testing.T) {
	want, err := loadExpected(filepath.Join("..", "expected-deviations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Error("expected-deviations.yaml lists nothing")
	}
}
