// Package target is the probe's one description of a server to audit:
// read from the `pop3probe run` flags (Flags), a targets file entry
// (its YAML keys) or the library's options, and written back as the
// flags of a child probe (Args). What the suite needs of it is the
// embedded harness.Config itself, so no mapping stands between the probe
// and the suite.
package target

import (
	"cmp"
	"fmt"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// DefaultTimeout bounds a run that names no --timeout.
const DefaultTimeout = time.Hour

// Target is one server (or the bundled one, without Host), the accounts
// and permissions of a run against it, and the run's spec selection.
type Target struct {
	// Config is the host, port, TLS mode, certificate checks, accounts,
	// profiles, mailbox fixture and permissions, as the suite takes them.
	harness.Config `yaml:",inline"`
	// Where the passwords come from, when named rather than held (a
	// targets file, or the flags): an environment variable or a file
	// whose first line is the password. Named, a password stays off
	// command lines and out of targets files.
	PasswordEnv   string `yaml:"password_env"`
	PasswordFile  string `yaml:"password_file"`
	Password2Env  string `yaml:"password2_env"`
	Password2File string `yaml:"password2_file"`
	// LabelFilter is a Ginkgo label filter selecting the specs.
	LabelFilter string `yaml:"-"`
	// Timeout bounds the whole run.
	Timeout time.Duration `yaml:"-"`
	// MaxConnections bounds the connections a run against a remote host
	// holds at once: its readonly specs share that many worker processes,
	// one connection each. 1 runs every spec in one process.
	MaxConnections int `yaml:"max_connections"`
	// NoObserve skips measuring the server's parameters (--no-observe).
	NoObserve bool `yaml:"-"`
}

// DefaultMaxConnections is --max-connections' default: few enough that
// no server's per-address or per-user limit is near (Dovecot allows 10
// sessions per user and address), enough to hide most of a distant
// server's round trips.
const DefaultMaxConnections = 4

// SetDefaults fills in what a run takes when it is not given: the
// default profile, no TLS, the POP3 port of the TLS mode, an hour.
func (t *Target) SetDefaults() {
	t.Profile = cmp.Or(t.Profile, profile.Default)
	t.TLS = cmp.Or(t.TLS, harness.TLSNone)
	if t.Host != "" && t.Port == 0 {
		t.Port = t.DefaultPort()
	}
	t.Timeout = cmp.Or(t.Timeout, DefaultTimeout)
	t.MaxConnections = cmp.Or(t.MaxConnections, DefaultMaxConnections)
}

// Harness is the suite's configuration of the target, defaults filled in.
func (t Target) Harness() harness.Config {
	t.SetDefaults()
	t.Config.Sessions = t.MaxConnections
	return t.Config
}

// Allowed names the classes the run allows, for the report: mutating
// allows reversible too.
func (t Target) Allowed() []string {
	var out []string
	for _, a := range []struct {
		on   bool
		name string
	}{{t.Allow.AllowsReversible(), "reversible"}, {t.Allow.Mutating, "mutating"}, {t.Allow.Disruptive, "disruptive"}, {t.Allow.Slow, "slow"}} {
		if a.on {
			out = append(out, a.name)
		}
	}
	return out
}

// Report is the target as a report describes it (never the passwords).
func (t Target) Report() report.Target {
	r := report.Target{
		Name: "bundled reference server",
		Host: t.Host, Port: t.Port, TLS: string(t.TLS), User: t.User,
		Reference: t.Host == "", Allowed: t.Allowed(), LabelFilter: t.LabelFilter,
	}
	if t.Host != "" {
		r.Name = fmt.Sprintf("%s:%d", t.Host, t.Port)
	}
	return r
}

// String is for logs and errors: never the passwords.
func (t Target) String() string {
	s := "the bundled reference server"
	if t.Host != "" {
		s = fmt.Sprintf("%s:%d (tls %s, user %s)", t.Host, t.Port, t.TLS, t.User)
	}
	return fmt.Sprintf("%s, profile %s", s, t.Profile)
}
