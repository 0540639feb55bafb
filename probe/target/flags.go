package target

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Flags are the target flags of `pop3probe run`, bound to a flag set.
type Flags struct {
	t                     Target
	implicitTLS, startTLS bool
}

// ServerFlags are the flags that describe one server, which a targets
// file says per target instead.
func ServerFlags() []string {
	return []string{"host", "port", "tls", "starttls", "user", "password-env", "password-file", "user2", "password2-env", "password2-file", "server-name", "ca-file", "mailbox-fixture", "reference-profile"}
}

// NewFlags registers the target flags on fs.
func NewFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	t := &f.t
	fs.StringVar(&t.Host, "host", "", "")
	fs.IntVar(&t.Port, "port", 0, "")
	fs.BoolVar(&f.implicitTLS, "tls", false, "")
	fs.BoolVar(&f.startTLS, "starttls", false, "")
	fs.BoolVar(&t.InsecureSkipVerify, "insecure-skip-verify", false, "")
	fs.StringVar(&t.ServerName, "server-name", "", "")
	fs.StringVar(&t.CAFile, "ca-file", "", "")
	fs.StringVar(&t.User, "user", "", "")
	fs.StringVar(&t.PasswordEnv, "password-env", "", "")
	fs.StringVar(&t.PasswordFile, "password-file", "", "")
	fs.StringVar(&t.User2, "user2", "", "")
	fs.StringVar(&t.Password2Env, "password2-env", "", "")
	fs.StringVar(&t.Password2File, "password2-file", "", "")
	fs.StringVar(&t.Profile, "profile", profile.Default, "")
	// For discrimination runs: the bundled server behaves as this profile
	// while the specs expect --profile.
	fs.StringVar(&t.ReferenceProfile, "reference-profile", "", "")
	fs.StringVar(&t.MailboxFixture, "mailbox-fixture", "", "")
	fs.BoolVar(&t.Allow.Reversible, "allow-reversible", false, "")
	fs.BoolVar(&t.Allow.Mutating, "allow-mutating", false, "")
	fs.BoolVar(&t.Allow.Disruptive, "allow-disruptive", false, "")
	fs.BoolVar(&t.Allow.Slow, "slow", false, "")
	fs.StringVar(&t.LabelFilter, "label-filter", "", "")
	fs.DurationVar(&t.Timeout, "timeout", DefaultTimeout, "")
	fs.IntVar(&t.MaxConnections, "max-connections", DefaultMaxConnections, "")
	fs.BoolVar(&t.NoObserve, "no-observe", false, "")
	return f
}

// Parsed is the target as the flags were given, nothing read or checked:
// with --targets, the settings every target of the file shares.
func (f *Flags) Parsed() Target { return f.t }

// Target reads the passwords the flags name (getenv reads a variable)
// and checks the whole target once, in the flags' terms; a target with
// errors is not for use.
func (f *Flags) Target(getenv func(string) string) (Target, []error) {
	t := f.t
	var errs []error
	switch {
	case f.implicitTLS && f.startTLS:
		errs = append(errs, errors.New("--tls and --starttls exclude each other: --tls is implicit TLS (POP3S, port 995), --starttls upgrades a plain connection"))
	case f.implicitTLS:
		t.TLS = harness.TLSImplicit
	case f.startTLS:
		t.TLS = harness.TLSStartTLS
	default:
		t.TLS = harness.TLSNone
	}
	var err error
	if t.Password, err = secret("--password", t.PasswordEnv, t.PasswordFile, getenv); err != nil {
		errs = append(errs, err)
	}
	if t.Password2, err = secret("--password2", t.Password2Env, t.Password2File, getenv); err != nil {
		errs = append(errs, err)
	}
	if t.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: give a positive duration such as 30m", t.Timeout))
	}
	if t.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("--max-connections %d: give 1 or more (1: one session at a time)", t.MaxConnections))
	}
	if t.LabelFilter != "" {
		if _, err := types.ParseLabelFilter(t.LabelFilter); err != nil {
			errs = append(errs, fmt.Errorf("--label-filter: %v", err))
		}
	}
	if _, err := profile.Load(t.Profile); err != nil {
		errs = append(errs, fmt.Errorf("--profile: %v", err))
	}
	if t.ReferenceProfile != "" {
		if _, err := profile.Load(t.ReferenceProfile); err != nil {
			errs = append(errs, fmt.Errorf("--reference-profile: %v", err))
		}
	}
	errs = append(errs, t.check()...)
	if len(errs) > 0 {
		return t, errs
	}
	t.SetDefaults()
	return t, nil
}

// check says, in terms of flags, what a target lacks.
func (t Target) check() []error {
	var errs []error
	if t.Host == "" {
		if t.User != "" || t.Password != "" || t.User2 != "" || t.Password2 != "" {
			errs = append(errs, errors.New("--user/--password-* are set but --host is not: give --host to audit a server, or drop them to audit the bundled reference server"))
		}
		if t.TLS != harness.TLSNone && t.TLS != "" {
			errs = append(errs, errors.New("--tls/--starttls need --host; the bundled server is tested on every listener it has"))
		}
		return errs
	}
	if t.ReferenceProfile != "" {
		errs = append(errs, errors.New("--reference-profile applies to the bundled server only; drop it or drop --host"))
	}
	if t.Port < 0 || t.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d is not a TCP port", t.Port))
	}
	if t.User == "" {
		errs = append(errs, errors.New("--host needs an account: give --user NAME"))
	}
	if t.Password == "" {
		errs = append(errs, errors.New("--host needs a password: give --password-env VAR or --password-file FILE"))
	}
	if (t.User2 == "") != (t.Password2 == "") {
		errs = append(errs, errors.New("a second account needs both --user2 and --password2-env/--password2-file"))
	}
	return errs
}

// secret reads a password from an environment variable or a file, never
// from the command line.
func secret(flagName, envName, file string, getenv func(string) string) (string, error) {
	switch {
	case envName != "" && file != "":
		return "", fmt.Errorf("%s-env and %s-file exclude each other", flagName, flagName)
	case envName != "":
		v := getenv(envName)
		if v == "" {
			return "", fmt.Errorf("%s-env %s: the environment variable is empty or not set", flagName, envName)
		}
		return v, nil
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s-file: %v", flagName, err)
		}
		// The first line, so that `echo pw > file` works.
		v, _, _ := strings.Cut(string(data), "\n")
		v = strings.TrimSuffix(v, "\r")
		if v == "" {
			return "", fmt.Errorf("%s-file %s: the file's first line is empty", flagName, file)
		}
		return v, nil
	}
	return "", nil
}
