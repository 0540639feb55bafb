package cli

import (
	"regexp"
	"strings"

	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// envFlags maps the suite's environment settings, as its skip reasons and
// errors name them for a ginkgo run, to the probe's flags. Longer names
// come first: a Replacer tries its pairs in order at each position.
var envFlags = []string{
	harness.EnvAllow + "=reversible", "--allow-reversible",
	harness.EnvAllow + "=mutating", "--allow-mutating",
	harness.EnvAllow + "=disruptive", "--allow-disruptive",
	harness.EnvAllow + "=slow", "--slow",
	harness.EnvAllow, "--allow-* flags",
	harness.EnvTLS + "=implicit", "--tls",
	harness.EnvTLS + "=starttls", "--starttls",
	harness.EnvTLS, "--tls/--starttls",
	harness.EnvInsecureSkipVerify + "=true", "--insecure-skip-verify",
	harness.EnvInsecureSkipVerify, "--insecure-skip-verify",
	harness.EnvCAFile, "--ca-file",
	harness.EnvServerName, "--server-name",
	harness.EnvMailboxFixture + "=", "--mailbox-fixture ",
	harness.EnvMailboxFixture, "--mailbox-fixture",
	harness.EnvPassword2, "--password2-env/--password2-file",
	harness.EnvPassword, "--password-env/--password-file",
	harness.EnvUser2, "--user2",
	harness.EnvUser, "--user",
	harness.EnvHost, "--host",
	harness.EnvPort, "--port",
	harness.EnvReferenceProfile, "--reference-profile",
	harness.EnvProfile, "--profile",
}

var (
	envToFlag = strings.NewReplacer(envFlags...)
	// probeAside is the "(probe: --flag)" or "; probe: --flag" the suite
	// adds for probe users; once the env name is a flag it only repeats.
	probeAside = regexp.MustCompile(` ?\(probe: [^)]*\)|; probe: [^)]*\)`)
)

// flagHints rewrites a message of the suite so that it names the probe's
// flags instead of environment variables.
func flagHints(s string) string {
	if !strings.Contains(s, "POP3_") {
		return s
	}
	return envToFlag.Replace(probeAside.ReplaceAllStringFunc(s, closeAside))
}

// closeAside drops a probe aside but keeps the parenthesis of the
// surrounding text it closes: "(trust it with X; probe: --y)" keeps its ")".
func closeAside(m string) string {
	if strings.HasPrefix(m, ";") {
		return ")"
	}
	return ""
}

// useFlagHints rewrites every message of a probe run's report.
func useFlagHints(r *report.Report) {
	r.SuiteError = flagHints(r.SuiteError)
	for i, w := range r.Warnings {
		r.Warnings[i] = flagHints(w)
	}
	for i := range r.Statements {
		st := &r.Statements[i]
		st.Reason, st.Note = flagHints(st.Reason), flagHints(st.Note)
		for j := range st.Specs {
			st.Specs[j].Reason = flagHints(st.Specs[j].Reason)
		}
	}
}
