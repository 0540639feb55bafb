package cli

import (
	"errors"
	"flag"
	"io"
	"strings"

	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/probe/target"
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
	tf := target.NewFlags(fs)
	var formats string
	fs.StringVar(&o.Out, "out", "reports/latest", "")
	fs.StringVar(&formats, "format", "json,yaml,md,html,junit", "")
	fs.BoolVar(&o.Quiet, "quiet", false, "")
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
		for _, name := range target.ServerFlags() {
			if isSet(fs, name) {
				return o, usagef("--%s and --targets exclude each other: put the target settings into the targets file", name)
			}
		}
		o.Request = tf.Parsed()
		return o, nil
	}

	var errs []error
	if o.Request, errs = tf.Target(getenv); len(errs) > 0 {
		return o, joinUsage(errs)
	}
	return o, nil
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
