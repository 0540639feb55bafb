package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
)

// runOptions are the parsed flags of `probe run`.
type runOptions struct {
	Request
	Out     string
	Formats []report.Format
	Quiet   bool
	Targets string
	// Parallel bounds the child probes of --targets running at once; 0
	// takes the targets file's concurrency or DefaultParallel.
	Parallel int
	// NoObserve skips measuring server parameters.
	NoObserve bool
	// Expect is the baseline file of accepted deviations (--expect).
	Expect string
	// CompareProfiles runs the specs again under every other bundled
	// profile, in child probes, and scores the profiles by statements.
	CompareProfiles bool
}

// newFlagSet returns a flag set of the probe's own: Ginkgo registers its
// flags on flag.CommandLine, and the two must not clash.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses flags that may come before or after positional
// arguments, as in `probe report FILE.json --out DIR`.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// rejectArgvPasswords refuses a password on the command line before flag
// parsing could echo it in an error message.
func rejectArgvPasswords(args []string) error {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch name {
		case "password", "pass", "password2":
			flagName := name
			if name == "pass" {
				flagName = "password"
			}
			return usagef("passwords are not taken from the command line: use --%s-env VAR or --%s-file FILE", flagName, flagName)
		}
	}
	return nil
}

// parseRun turns the arguments of `probe run` into options; getenv reads
// the password variables.
func parseRun(args []string, getenv func(string) string, stdout io.Writer) (runOptions, error) {
	var o runOptions
	if err := rejectArgvPasswords(args); err != nil {
		return o, err
	}
	fs := newFlagSet("run")
	var (
		implicitTLS, startTLS                  bool
		passEnv, passFile, pass2Env, pass2File string
		formats                                string
	)
	fs.StringVar(&o.Host, "host", "", "")
	fs.IntVar(&o.Port, "port", 0, "")
	fs.BoolVar(&implicitTLS, "tls", false, "")
	fs.BoolVar(&startTLS, "starttls", false, "")
	fs.BoolVar(&o.InsecureSkipVerify, "insecure-skip-verify", false, "")
	fs.StringVar(&o.ServerName, "server-name", "", "")
	fs.StringVar(&o.CAFile, "ca-file", "", "")
	fs.StringVar(&o.User, "user", "", "")
	fs.StringVar(&passEnv, "password-env", "", "")
	fs.StringVar(&passFile, "password-file", "", "")
	fs.StringVar(&o.User2, "user2", "", "")
	fs.StringVar(&pass2Env, "password2-env", "", "")
	fs.StringVar(&pass2File, "password2-file", "", "")
	fs.StringVar(&o.Profile, "profile", "exchange2010", "")
	// For discrimination runs: the bundled server behaves as this profile
	// while the specs expect --profile.
	fs.StringVar(&o.ReferenceProfile, "reference-profile", "", "")
	fs.StringVar(&o.MailboxFixture, "mailbox-fixture", "", "")
	fs.BoolVar(&o.AllowReversible, "allow-reversible", false, "")
	fs.BoolVar(&o.AllowMutating, "allow-mutating", false, "")
	fs.BoolVar(&o.AllowDisruptive, "allow-disruptive", false, "")
	fs.BoolVar(&o.AllowSlow, "slow", false, "")
	fs.StringVar(&o.LabelFilter, "label-filter", "", "")
	fs.DurationVar(&o.Timeout, "timeout", time.Hour, "")
	fs.IntVar(&o.MaxConnections, "max-connections", DefaultMaxConnections, "")
	fs.StringVar(&o.Out, "out", "reports/latest", "")
	fs.StringVar(&formats, "format", "json,yaml,md,html,junit", "")
	fs.BoolVar(&o.Quiet, "quiet", false, "")
	fs.BoolVar(&o.NoObserve, "no-observe", false, "")
	fs.BoolVar(&o.CompareProfiles, "compare-profiles", false, "")
	fs.StringVar(&o.Expect, "expect", "", "")
	fs.StringVar(&o.Targets, "targets", "", "")
	fs.IntVar(&o.Parallel, "parallel", 0, "")
	help := fs.Bool("help", false, "")
	fs.BoolVar(help, "h", false, "")

	pos, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) || (err == nil && *help) {
		_, _ = io.WriteString(stdout, usage)
		return o, errHelp
	}
	if err != nil {
		return o, err
	}
	if len(pos) > 0 {
		return o, usagef("unexpected argument %q (flags start with --)", pos[0])
	}
	if o.Formats, err = report.ParseFormats(formats); err != nil {
		return o, usagef("--format: %v", err)
	}
	if o.Parallel < 0 {
		return o, usagef("--parallel %d: give a positive number of targets audited at once", o.Parallel)
	}
	if o.Parallel > 0 && o.Targets == "" {
		return o, usagef("--parallel applies to --targets: it bounds how many targets are audited at once")
	}
	if o.Targets != "" {
		// The targets file holds the target flags; the others apply to
		// every target.
		for _, name := range []string{"host", "port", "tls", "starttls", "user", "password-env", "password-file", "user2", "password2-env", "password2-file", "server-name", "ca-file", "mailbox-fixture", "reference-profile"} {
			if isSet(fs, name) {
				return o, usagef("--%s and --targets exclude each other: put the target settings into the targets file", name)
			}
		}
		return o, nil
	}

	var errs []error
	switch {
	case implicitTLS && startTLS:
		errs = append(errs, usagef("--tls and --starttls exclude each other: --tls is implicit TLS (POP3S, port 995), --starttls upgrades a plain connection"))
	case implicitTLS:
		o.TLS = "implicit"
	case startTLS:
		o.TLS = "starttls"
	default:
		o.TLS = "none"
	}
	if o.Password, err = secret("--password", passEnv, passFile, getenv); err != nil {
		errs = append(errs, err)
	}
	if o.Password2, err = secret("--password2", pass2Env, pass2File, getenv); err != nil {
		errs = append(errs, err)
	}
	if o.Timeout <= 0 {
		errs = append(errs, usagef("--timeout %v: give a positive duration such as 30m", o.Timeout))
	}
	if o.MaxConnections < 1 {
		errs = append(errs, usagef("--max-connections %d: give 1 or more (1: one session at a time)", o.MaxConnections))
	}
	if o.LabelFilter != "" {
		if _, err := types.ParseLabelFilter(o.LabelFilter); err != nil {
			errs = append(errs, usagef("--label-filter: %v", err))
		}
	}
	if _, err := profile.Load(o.Profile); err != nil {
		errs = append(errs, usagef("--profile: %v", err))
	}
	if o.ReferenceProfile != "" {
		if _, err := profile.Load(o.ReferenceProfile); err != nil {
			errs = append(errs, usagef("--reference-profile: %v", err))
		}
	}
	errs = append(errs, o.Request.check()...)
	if len(errs) > 0 {
		return o, joinUsage(errs)
	}
	if o.Host != "" && o.Port == 0 {
		o.Port = 110
		if o.TLS == "implicit" {
			o.Port = 995
		}
	}
	return o, nil
}

// check says, in terms of flags, what a target request lacks.
func (r Request) check() []error {
	var errs []error
	if r.Host == "" {
		if r.User != "" || r.Password != "" || r.User2 != "" || r.Password2 != "" {
			errs = append(errs, usagef("--user/--password-* are set but --host is not: give --host to audit a server, or drop them to audit the bundled reference server"))
		}
		if r.TLS != "none" && r.TLS != "" {
			errs = append(errs, usagef("--tls/--starttls need --host; the bundled server is tested on every listener it has"))
		}
		return errs
	}
	if r.ReferenceProfile != "" {
		errs = append(errs, usagef("--reference-profile applies to the bundled server only; drop it or drop --host"))
	}
	if r.Port < 0 || r.Port > 65535 {
		errs = append(errs, usagef("--port %d is not a TCP port", r.Port))
	}
	if r.User == "" {
		errs = append(errs, usagef("--host needs an account: give --user NAME"))
	}
	if r.Password == "" {
		errs = append(errs, usagef("--host needs a password: give --password-env VAR or --password-file FILE"))
	}
	if (r.User2 == "") != (r.Password2 == "") {
		errs = append(errs, usagef("a second account needs both --user2 and --password2-env/--password2-file"))
	}
	return errs
}

// secret reads a password from an environment variable or a file, never
// from the command line.
func secret(flagName, envName, file string, getenv func(string) string) (string, error) {
	switch {
	case envName != "" && file != "":
		return "", usagef("%s-env and %s-file exclude each other", flagName, flagName)
	case envName != "":
		v := getenv(envName)
		if v == "" {
			return "", usagef("%s-env %s: the environment variable is empty or not set", flagName, envName)
		}
		return v, nil
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", usagef("%s-file: %v", flagName, err)
		}
		// The first line, so that `echo pw > file` works.
		v, _, _ := strings.Cut(string(data), "\n")
		v = strings.TrimSuffix(v, "\r")
		if v == "" {
			return "", usagef("%s-file %s: the file's first line is empty", flagName, file)
		}
		return v, nil
	}
	return "", nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func joinUsage(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	if len(msgs) == 1 {
		return usageError{msgs[0]}
	}
	return usageError{strings.Join(msgs, "\n  ")}
}

// String is for logs: never the passwords.
func (r Request) String() string {
	target := "the bundled reference server"
	if r.Host != "" {
		target = fmt.Sprintf("%s:%d (tls %s, user %s)", r.Host, r.Port, r.TLS, r.User)
	}
	return fmt.Sprintf("%s, profile %s", target, r.Profile)
}
