// Package cli is the probe command: flag parsing, the subcommands and the
// exit codes. Running the specs is injected as a Runner so that this
// package can be tested without a POP3 server and without Ginkgo's
// one-suite-per-process limit.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/probe/target"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Exit codes; `pop3probe --help` documents them.
const (
	ExitConformant = 0 // every applicable statement conformant
	ExitDeviates   = 1 // at least one statement deviates (or a spec could not finish)
	ExitUsage      = 2 // usage, configuration or connection error
)

// Request is one suite run: the target, its accounts and permissions,
// and the run's spec selection and time limit.
type Request = target.Target

// SpecEvent reports one finished spec.
type SpecEvent struct {
	N, Total int
	Verdict  verdict.Verdict
	IDs      []string
	Text     string
	Reason   string
	Elapsed  time.Duration
}

// Progress hears about the run as it goes.
type Progress interface {
	Start(total int)
	Spec(SpecEvent)
}

// SpecStart announces a spec about to run; Wait is how long it may wait
// on a server timer (0 when unknown), Timeout its time limit.
type SpecStart struct {
	N, Total int
	IDs      []string
	Text     string
	Slow     bool
	Wait     time.Duration
	Timeout  time.Duration
}

// SpecStarter is a Progress that also hears when a spec starts.
type SpecStarter interface {
	SpecStart(SpecStart)
}

// Stepper is a Progress that hears about steps besides the specs (the
// parameter measurement) and about the end of the run.
type Stepper interface {
	Step(name string)
	Done()
}

// Runner runs the conformance specs once and returns Ginkgo's reports.
type Runner func(ctx context.Context, req Request, p Progress) ([]types.Report, error)

// Observer measures the server's parameters after the specs ran.
// facts are what the run measured before its specs (nil when it did not
// say); the observer reuses them instead of measuring them again.
type Observer func(ctx context.Context, req Request, facts *harness.Facts) (*report.Observed, error)

// Env is what the command may touch of the outside world.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Runner runs the suite in this process.
	Runner Runner
	// Observer measures server parameters after the run; nil skips it.
	Observer Observer
	// TTY says whether Stderr is a terminal (live progress bar); nil
	// detects it.
	TTY func() bool
	// Executable is the probe binary, for one child process per target
	// with --targets.
	Executable string
	// Catalog overrides the embedded requirement catalogue; for tests.
	Catalog *catalog.Catalog
}

func (e Env) catalog() (*catalog.Catalog, error) {
	if e.Catalog != nil {
		return e.Catalog, nil
	}
	c, err := catalog.Load()
	if err != nil {
		return nil, fmt.Errorf("loading the requirement catalogue: %w", err)
	}
	return c, nil
}

// usageError is a mistake in the command line or configuration; the probe
// exits 2 with its message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// Main runs the probe with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	cmd, rest := "run", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, rest = args[0], args[1:]
	}
	var err error
	code := ExitConformant
	switch cmd {
	case "run":
		code, err = runCommand(ctx, rest, env)
	case "report":
		code, err = reportCommand(rest, env)
	case "list":
		err = listCommand(rest, env)
	case "diff":
		code, err = diffCommand(rest, env)
	case "version":
		_, err = fmt.Fprintf(env.Stdout, "pop3probe %s\n", Version())
	case "help":
		_, err = io.WriteString(env.Stdout, usage)
	default:
		err = usagef("unknown command %q: use run, report, list, diff, version or help", cmd)
	}
	if err == nil {
		return code
	}
	if errors.Is(err, errHelp) {
		return ExitConformant
	}
	fmt.Fprintf(env.Stderr, "pop3probe: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(env.Stderr, "Run 'pop3probe --help' for usage.")
	}
	return ExitUsage
}

const usage = `pop3probe: audit a POP3 server with the pop3conformance specs and write a
conformance report.

Usage:
  pop3probe [run] [flags]             run the specs (default command)
  pop3probe report FILE.json [flags]  rebuild the report from a 'ginkgo --json-report' file
  pop3probe list                      print the requirement catalogue
  pop3probe diff OLD.json NEW.json    compare two probe JSON reports
  pop3probe version                   print the version

Without --host the target is the bundled reference server, started in
this process (what 'make conformance' uses).

Target:
  --host HOST              server to audit
  --port N                 port (default 110, or 995 with --tls)
  --tls                    implicit TLS (POP3S)
  --starttls               upgrade with STLS
  --insecure-skip-verify   do not verify the server certificate (verification is on by default)
  --server-name NAME       name to verify in the certificate
  --ca-file FILE           PEM bundle to trust besides the system roots
  --user NAME              account to log in with
  --password-env VAR       read the password from environment variable VAR
  --password-file FILE     read the password from FILE (first line)
  --user2, --password2-env, --password2-file
                           a second account, for specs that need two
  --mailbox-fixture NAME   --user's mailbox holds exactly fixture account NAME's mail
  Passwords are never taken from the command line and never printed.

Expectations and safety:
  --profile NAME|FILE      exchange2010 (default), exchange2007, rfc1939, dovecot, or a profile YAML
  --reference-profile NAME|FILE
                           bundled server only: it behaves as this profile while the specs
                           expect --profile (see what a deviating server's report looks like)
  --allow-reversible       run specs that mark mail deleted and undo it with RSET or a
                           close without QUIT (the undo relies on the server)
  --allow-mutating         run specs that delete or change mail (implies --allow-reversible)
  --allow-disruptive       run specs that wait out timeouts, contend for locks, open many connections
  --slow                   run specs that wait for real server timers (minutes)
  --expect FILE            baseline of accepted deviations: statement IDs, one a line (the rest
                           of the line, or a '# comment', is the reason), or a YAML list of IDs
                           or {id, reason}; a listed statement that deviates is marked accepted
                           and does not fail the run; one that no longer deviates gets a warning
                           (exit code unchanged) so the baseline can be trimmed
  --label-filter EXPR      Ginkgo label filter, e.g. 'req: containsAny {V0008}'
  --timeout D              bound for the whole run (default 1h; with --compare-profiles, per profile)
  --max-connections N      connections a remote audit holds at once (default 4): readonly specs
                           run on N sessions in parallel, everything else alone; a server that
                           locks the maildrop, refuses a second session or a connection gets
                           fewer, never a deviation; 1 runs one session at a time
  --compare-profiles       also run the specs under each other bundled profile (a child probe each)
                           and report how many statements the server passes under each; the
                           closest profile then goes by statements. The runs go in parallel for
                           the bundled server, one after another against --host. The exit code
                           comes from the --profile run alone.
  Readonly specs only by default: no DELE in any form, no failed login of
  --user or --user2. A spec that needs a permission is reported as not-run
  with the flag that would enable it; a line the permissions forbid is
  never written (the report counts the command classes sent).

Many servers:
  --targets FILE           audit every server of a YAML targets file, one child probe each, into
                           --out/NAME/; writes summary.md, summary.json and summary.txt (one row per
                           target: counts per verdict, closest profile, exit code, report directory)
  --parallel N             targets audited at once (default: the file's concurrency, else 2); two
                           targets on the same host:port never run at the same time

Output:
  --out DIR                report directory (default reports/latest)
  --format LIST            comma-separated: json,yaml,md,html,junit (default all five)
                           observed-profile.yaml (the measured server as a profile) comes with any
  --no-observe             skip measuring server parameters
  --quiet                  no progress on stderr (a live bar on a terminal, plain lines otherwise)

Exit codes:
  0  every applicable statement is conformant
  1  at least one statement deviates, or a spec could not finish (and --expect
     does not accept it)
     (pop3probe diff: at least one statement regressed)
  2  usage, configuration or connection error; the message says what to fix
`

var errHelp = errors.New("help shown")
