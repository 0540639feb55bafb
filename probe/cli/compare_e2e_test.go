package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
)

// buildProbe builds the real probe binary (the suite included, which
// this package's tests do not link) into a temporary directory.
func buildProbe(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the probe with")
	}
	bin := filepath.Join(t.TempDir(), "pop3probe")
	// A path relative to this package, so the test does not name the module.
	cmd := exec.Command(gobin, "build", "-o", bin, "../cmd/pop3probe")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// probeEnv is this process's environment without the variables that
// would turn a child into this test binary's fake.
func probeEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains([]string{envChild, envChildLog, envChildBarrier, envChildFail}, name)
	})
}

// TestCompareProfilesEndToEnd runs the real probe once against the
// bundled server behaving as rfc1939 while the specs expect exchange2010:
// the children, one per other bundled profile, must find that the server
// passes the most statements as rfc1939, with none deviating, while the
// chosen exchange2010 deviates.
func TestCompareProfilesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite once per bundled profile")
	}
	bin := buildProbe(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "--reference-profile", "rfc1939", "--profile", "exchange2010", "--compare-profiles",
		"--no-observe", "--quiet", "--format", "json,md", "--out", out, "--timeout", "5m")
	cmd.Env = probeEnv()
	start := time.Now()
	console, _ := cmd.CombinedOutput()
	t.Logf("probe with --compare-profiles took %v", time.Since(start).Round(time.Millisecond))
	if code := cmd.ProcessState.ExitCode(); code != ExitDeviates {
		t.Fatalf("exit %d, want %d (exchange2010's expectations are not met)\n%s", code, ExitDeviates, console)
	}
	r, err := report.Load(filepath.Join(out, report.JSON.FileName()))
	if err != nil {
		t.Fatal(err)
	}
	if r.ClosestProfile != "rfc1939" || r.ClosestProfileBy != report.ClosestByStatements {
		t.Errorf("closest profile %q by %q, want rfc1939 by statements", r.ClosestProfile, r.ClosestProfileBy)
	}
	var names []string
	for i, s := range r.ProfileScores {
		names = append(names, s.Name)
		t.Logf("%-13s chosen=%-5v conformant %3d, deviates %2d, other %2d %s", s.Name, s.Chosen, s.Conformant(), s.Deviates(), s.Other(), s.Error)
		if s.Error != "" {
			t.Errorf("%s: %s", s.Name, s.Error)
		}
		if s.Chosen != (s.Name == "exchange2010") {
			t.Errorf("%s: chosen %v", s.Name, s.Chosen)
		}
		if s.Chosen && (s.Deviates() == 0 || s.Deviates() != r.Summary.Counts["deviates"]) {
			t.Errorf("chosen exchange2010 deviates in %d statements, want the main run's %d (> 0)", s.Deviates(), r.Summary.Counts["deviates"])
		}
		if i > 0 && betterThan(s, r.ProfileScores[i-1]) {
			t.Errorf("%s is ranked below %s but scores better", s.Name, r.ProfileScores[i-1].Name)
		}
	}
	if len(names) == 0 || names[0] != "rfc1939" || r.ProfileScores[0].Deviates() != 0 {
		t.Errorf("best %v, want rfc1939 with no deviation", r.ProfileScores)
	}
	slices.Sort(names)
	if !slices.Equal(names, profile.Bundled()) {
		t.Errorf("scored profiles %v, want every bundled profile %v", names, profile.Bundled())
	}
	md, _ := os.ReadFile(filepath.Join(out, report.Markdown.FileName()))
	if !strings.Contains(string(md), "| rfc1939 | ") || !strings.Contains(string(md), "| exchange2010 (chosen) | ") {
		t.Errorf("report.md lacks the profile table")
	}
}

// betterThan says whether a ranks above b: more conformant, or as many
// and fewer deviating.
func betterThan(a, b report.ProfileScore) bool {
	return a.Conformant() > b.Conformant() || (a.Conformant() == b.Conformant() && a.Deviates() < b.Deviates())
}
