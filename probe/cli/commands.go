package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/probe/report"
)

func tool() report.Tool { return report.Tool{Name: "pop3probe", Version: Version()} }

func runCommand(ctx context.Context, args []string, env Env) (int, error) {
	o, err := parseRun(args, env.Getenv, env.Stdout)
	if err != nil {
		return ExitUsage, err
	}
	if o.Targets != "" {
		return runTargets(ctx, o, env)
	}
	if env.Runner == nil {
		return ExitUsage, errors.New("this build of the probe cannot run the suite")
	}
	if o.CompareProfiles && env.Executable == "" {
		return ExitUsage, errors.New("--compare-profiles: cannot find the probe executable to start one child per profile")
	}
	cat, err := env.catalog()
	if err != nil {
		return ExitUsage, err
	}
	// A baseline with a typo must stop the run before it starts, not
	// after an hour of specs.
	base, err := loadBaseline(o.Expect, cat)
	if err != nil {
		return ExitUsage, err
	}
	secrets := report.Secrets{o.Password, o.Password2}
	prog := newProgress(env, o.Quiet, secrets)
	slog.Debug("probe run", "target", o.Request.String(), "out", o.Out)
	others := newComparison(ctx, env, o)
	defer others.stop()
	others.begin()
	// --timeout bounds the whole run: the connection check, the specs
	// (the runner gives Ginkgo what is left as its suite timeout) and the
	// measurement of server parameters.
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	in := report.Input{Tool: tool(), Target: o.Report(), Profile: o.Profile}
	runs, err := env.Runner(ctx, o.Request, prog)
	if err != nil {
		done(prog)
		return preflightFailed(ctx, o, in, start, err, secrets, env)
	}
	r := report.Build(runs, cat, in)
	if env.Observer != nil && !o.NoObserve && r.SuiteError == "" && ctx.Err() == nil {
		if s, ok := prog.(Stepper); ok {
			s.Step("measuring server parameters")
		}
		obs, err := env.Observer(ctx, o.Request, r.Facts)
		if err != nil {
			r.Warnings = append(r.Warnings, "measuring server parameters: "+secrets.String(err.Error()))
		} else {
			r.SetObserved(obs)
			if r.ClosestProfile != "" {
				// SetObserved named it from the parameter comparison;
				// the statement scores may overrule it below.
				r.ClosestProfileBy = report.ClosestByParameters
			}
		}
	}
	others.apply(r, prog)
	done(prog)
	useFlagHints(r)
	if base != nil {
		r.ApplyBaseline(base)
	}
	return finish(r, o.Out, o.Formats, secrets, env, suiteErrorHint(ctx, o, r.SuiteError))
}

// preflightFailed handles a suite that never started (the target would
// not answer, the certificate does not verify, the login is refused, the
// configuration is unusable): one short report says why, instead of five
// reports of statements that were never run.
func preflightFailed(ctx context.Context, o runOptions, in report.Input, start time.Time, err error, secrets report.Secrets, env Env) (int, error) {
	msg := flagHints(secrets.String(err.Error()))
	if timedOut(ctx, "") {
		msg += "; " + timeoutHint(o.Timeout)
	}
	r := &report.Report{SchemaVersion: report.SchemaVersion, Tool: in.Tool, Target: in.Target, Profile: in.Profile,
		SuiteError: msg, StartTime: start.UTC()}
	if path, werr := report.WritePreflight(o.Out, r, secrets); werr == nil {
		fmt.Fprintf(env.Stdout, "report: %s\n", path)
	} else {
		fmt.Fprintf(env.Stderr, "pop3probe: %v\n", werr)
	}
	return ExitUsage, fmt.Errorf("running the suite against %s: %v", o.Request, msg)
}

// timedOut reports whether the run reached --timeout: the context's
// deadline passed, or Ginkgo's suite timeout (set to what was left of it)
// cut the run short.
func timedOut(ctx context.Context, suiteError string) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded) || strings.Contains(suiteError, "Suite Timeout Elapsed")
}

func timeoutHint(d time.Duration) string {
	return fmt.Sprintf("the run reached --timeout %v before it finished: raise --timeout (e.g. --timeout %v); with --slow, waits on server timers take minutes", d, 2*d)
}

// suiteErrorHint says what to do about a suite that could not judge the
// target: raise --timeout when the run ran out of time, else check the
// target flags.
func suiteErrorHint(ctx context.Context, o runOptions, suiteError string) string {
	if timedOut(ctx, suiteError) {
		return timeoutHint(o.Timeout)
	}
	return checkTargetHint
}

const checkTargetHint = "check --host, --port, --tls/--starttls, the certificate flags and the credentials"

func done(p Progress) {
	if s, ok := p.(Stepper); ok {
		s.Done()
	}
}

// finish writes the report, prints where it went and its summary line,
// and picks the exit code.
func finish(r *report.Report, out string, formats []report.Format, secrets report.Secrets, env Env, hint string) (int, error) {
	paths, err := report.Write(out, formats, r, secrets)
	if err != nil {
		return ExitUsage, err
	}
	fmt.Fprintf(env.Stdout, "%s\n", secrets.String(r.Line()))
	if t := r.Commands.TrafficText(); t != "" {
		fmt.Fprintf(env.Stdout, "network: %s\n", t)
	}
	if line := closestLine(r); line != "" {
		fmt.Fprintf(env.Stdout, "%s\n", secrets.String(line))
	}
	fmt.Fprintf(env.Stdout, "reports: %s\n", strings.Join(paths, " "))
	if x := r.Expect; x != nil {
		fmt.Fprintf(env.Stdout, "%s\n", x.Text())
		if len(x.Fixed) > 0 {
			fmt.Fprintf(env.Stderr, "pop3probe: warning: %s\n", x.FixedText())
		}
	}
	if r.SuiteError != "" {
		return ExitUsage, fmt.Errorf("the suite could not judge the target: %s\n(%s)", secrets.String(r.SuiteError), hint)
	}
	if r.Failed() {
		return ExitDeviates, nil
	}
	return ExitConformant, nil
}

// closestLine names the closest profile by statements, with its counts
// and the chosen profile's, when --compare-profiles scored them.
func closestLine(r *report.Report) string {
	if r.ClosestProfileBy != report.ClosestByStatements || len(r.ProfileScores) == 0 {
		return ""
	}
	var parts []string
	for _, s := range r.ProfileScores {
		if s.Error != "" {
			parts = append(parts, s.Name+" not judged")
			continue
		}
		chosen := ""
		if s.Chosen {
			chosen = " (chosen)"
		}
		parts = append(parts, fmt.Sprintf("%s%s %d/%d", s.Name, chosen, s.Conformant(), s.Deviates()))
	}
	return fmt.Sprintf("closest profile by statements: %s (conformant/deviates: %s)", r.ClosestProfile, strings.Join(parts, ", "))
}

// reportCommand rebuilds the report from a `ginkgo --json-report` file.
func reportCommand(args []string, env Env) (int, error) {
	fs := newFlagSet("report")
	out := fs.String("out", "reports/latest", "")
	formats := fs.String("format", "json,yaml,md,html,junit", "")
	prof := fs.String("profile", "", "")
	expect := fs.String("expect", "", "")
	pos, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, errHelp) {
			_, _ = io.WriteString(env.Stdout, usage)
		}
		return ExitUsage, err
	}
	if len(pos) != 1 {
		return ExitUsage, usagef("report takes one ginkgo JSON report file, e.g. pop3probe report reports/test-exchange2010/report.json")
	}
	fmts, err := report.ParseFormats(*formats)
	if err != nil {
		return ExitUsage, usagef("--format: %v", err)
	}
	runs, err := report.LoadGinkgo(pos[0])
	if err != nil {
		return ExitUsage, err
	}
	cat, err := env.catalog()
	if err != nil {
		return ExitUsage, err
	}
	base, err := loadBaseline(*expect, cat)
	if err != nil {
		return ExitUsage, err
	}
	r := report.Build(runs, cat, report.Input{Tool: tool(), Profile: *prof})
	if base != nil {
		r.ApplyBaseline(base)
	}
	return finish(r, *out, fmts, nil, env, checkTargetHint)
}

// loadBaseline reads the --expect file, nil without one; every ID in it
// must be a catalogue statement.
func loadBaseline(path string, cat *catalog.Catalog) (*report.Baseline, error) {
	if path == "" {
		return nil, nil
	}
	b, err := report.LoadBaseline(path)
	if err != nil {
		return nil, usagef("--expect: %v", err)
	}
	unknown := b.Unknown(func(id string) bool {
		_, ok := cat.Lookup(id)
		return ok
	})
	if len(unknown) > 0 {
		return nil, usagef("--expect %s: not statement IDs of the catalogue (see pop3probe list): %s", path, strings.Join(unknown, ", "))
	}
	return b, nil
}

func listCommand(args []string, env Env) error {
	fs := newFlagSet("list")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("list takes no arguments")
	}
	cat, err := env.catalog()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tVERIFICATION\tSUMMARY")
	for _, r := range cat.Requirements {
		fmt.Fprintf(tw, "%s\t%s §%s\t%s\t%s\n", r.ID, r.Source, r.Section, r.Verification, r.Summary)
	}
	return tw.Flush()
}

func diffCommand(args []string, env Env) (int, error) {
	fs := newFlagSet("diff")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return ExitUsage, err
	}
	if len(pos) != 2 {
		return ExitUsage, usagef("diff takes two probe JSON reports: pop3probe diff OLD/report.json NEW/report.json")
	}
	old, err := report.Load(pos[0])
	if err != nil {
		return ExitUsage, err
	}
	cur, err := report.Load(pos[1])
	if err != nil {
		return ExitUsage, err
	}
	d := report.Compare(old, cur)
	if err := d.WriteText(env.Stdout); err != nil {
		return ExitUsage, err
	}
	if d.Regressions() > 0 {
		return ExitDeviates, nil
	}
	return ExitConformant, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	const limit = 120
	if r := []rune(l); len(r) > limit {
		l = string(r[:limit]) + "…"
	}
	return l
}
