package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
)

// TestObservedProfileRoundTrip checks the promise of observed-profile.yaml:
// it is the server's fingerprint, so fed back with --profile it describes
// the server. The bundled server runs a configuration that matches no
// bundled profile (Exchange 2010 with a 300-octet limit, single-space
// separators and -ERR for unknown names); judged as exchange2010 it
// deviates, judged by the profile the probe wrote for it, it does not.
func TestObservedProfileRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite twice")
	}
	p, err := profile.Load("exchange2010")
	if err != nil {
		t.Fatal(err)
	}
	p.Name = "custom"
	p.MaxCommandOctets = 300
	p.Separators = profile.SeparatorsSingleSpace
	p.UnknownUserReply = profile.ReplyErr
	server := profileFile(t, p, "custom")

	run := func(expect string) (*report.Report, string, int) {
		out := t.TempDir()
		cmd := exec.Command(os.Args[0], "--profile", expect, "--reference-profile", server,
			"--format", "json", "--quiet", "--out", out, "--timeout", "5m")
		cmd.Env = append(os.Environ(), envAsProbe+"=1")
		console, _ := cmd.CombinedOutput()
		r, err := report.Load(filepath.Join(out, report.JSON.FileName()))
		if err != nil {
			t.Fatalf("%v\n%s", err, console)
		}
		return r, filepath.Join(out, "observed-profile.yaml"), cmd.ProcessState.ExitCode()
	}
	deviating := func(r *report.Report) []string {
		var ids []string
		for _, st := range r.Statements {
			if st.Verdict == verdict.Deviates || st.Verdict == verdict.Error {
				ids = append(ids, st.ID)
			}
		}
		return ids
	}

	first, observed, code := run("exchange2010")
	if code != 1 || len(deviating(first)) == 0 {
		t.Fatalf("judged as exchange2010: exit %d, deviations %v; want exit 1 with deviations (the server is not exchange2010)", code, deviating(first))
	}
	for key, want := range map[string]string{"max_command_octets": "300", "separators": "single-space", "unknown_user_reply": "err"} {
		if got := report.ShowValue(first.Observed[key]); got != want {
			t.Errorf("observed %s = %s, want %s", key, got, want)
		}
	}
	if _, err := profile.Load(observed); err != nil {
		t.Fatalf("observed-profile.yaml does not load as a profile: %v", err)
	}

	second, _, code := run(observed)
	if ids := deviating(second); code != 0 || len(ids) > 0 {
		t.Errorf("judged by its own observed profile: exit %d, deviations %v; want exit 0 and none", code, ids)
	}
	// Keys the probe did not measure are left out, and the statements
	// judged by them end inconclusive: neither deviates nor conformant.
	own, err := profile.Load(observed)
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Unknown()) == 0 {
		t.Fatalf("observed-profile.yaml says every key; the probe does not measure them all")
	}
	cat := catalog.MustLoad()
	checked := 0
	for _, st := range second.Statements {
		req, _ := cat.Lookup(st.ID)
		for _, k := range req.ProfileKeys {
			if own.Known(k) {
				continue
			}
			checked++
			if st.Verdict == verdict.Conformant || st.Verdict == verdict.Deviates {
				t.Errorf("%s: verdict %s, but observed-profile.yaml does not say %s", st.ID, st.Verdict, k)
			}
			break
		}
	}
	if checked == 0 {
		t.Error("no statement depends on a key the observed profile leaves out")
	}
	t.Logf("as exchange2010: %s; as observed: %s; %d statements depend on unknown keys %v", first.Line(), second.Line(), checked, own.Unknown())
}
