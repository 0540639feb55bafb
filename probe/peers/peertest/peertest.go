// Package peertest holds what the probe tests of the peers in
// probe/peers share. Each peer's probe_test.go starts a real POP3
// server through its start.sh (Server.Start), runs the built probe CLI
// against it (Probe.Run) and compares the report with what was observed
// by hand on the wire (CheckRun, CheckDeviations, CheckObserved,
// CheckMethods); the expectations themselves stay in the peer's test.
//
// A peer that cannot run on this machine is skipped, unless the CI
// environment variable is set: there it must run, so Require fails the
// test instead.
package peertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildTimeout bounds building the probe CLI.
const buildTimeout = 3 * time.Minute

// Require skips the test when why (what keeps server from running here)
// is not empty, or fails it when InCI says this machine must run it.
func Require(t testing.TB, server, why string) {
	t.Helper()
	if why == "" {
		return
	}
	if InCI() {
		t.Fatalf("CI is set and %s cannot run: %s", server, why)
	}
	t.Skip(why)
}

// Missing says which of what is missing and how to install it ("" when
// nothing is).
func Missing(what []string, install string) string {
	if len(what) == 0 {
		return ""
	}
	return fmt.Sprintf("missing %s (%s)", strings.Join(what, ", "), install)
}

// MissingCommands are the names that exec.LookPath does not find.
func MissingCommands(names ...string) []string {
	var missing []string
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	return missing
}

// InCI reports whether the CI environment variable is set to something
// other than "", "0" or "false".
func InCI() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("CI")))
	return v != "" && v != "0" && v != "false"
}

// RepoRoot is the module root, three levels above the peer's package
// directory (the working directory of its test).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at the repository root %s: %v", root, err)
	}
	return root
}

// BuildProbe builds the probe CLI of the module at root once for all the
// test's runs and returns the binary's path.
func BuildProbe(t testing.TB, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pop3probe")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./probe/cmd/pop3probe")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./probe/cmd/pop3probe: %v\n%s", err, out)
	}
	return bin
}
