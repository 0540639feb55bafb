package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/probe/target"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// TargetsFile is the --targets file: many servers, audited by one child
// probe each, since Ginkgo runs one suite per process.
type TargetsFile struct {
	// Concurrency bounds the child probes running at once; --parallel
	// overrides it, and without either it is DefaultParallel.
	Concurrency int           `yaml:"concurrency"`
	Targets     []TargetEntry `yaml:"targets"`
}

// TargetEntry is one server: a target under its YAML keys (passwords
// are named, password_env or password_file, never written), the name of
// its report directory, and its own baseline.
type TargetEntry struct {
	Name          string `yaml:"name"`
	target.Target `yaml:",inline"`
	// Expect overrides --expect: this server's own baseline of accepted
	// deviations.
	Expect string `yaml:"expect"`
}

var targetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// LoadTargets reads and checks a targets file.
func LoadTargets(path string) (*TargetsFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("--targets: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var tf TargetsFile
	if err := dec.Decode(&tf); err != nil {
		return nil, usagef("--targets %s: %v", path, err)
	}
	if err := checkEntries(data); err != nil {
		return nil, usagef("--targets %s: %v", path, err)
	}
	var errs []error
	if tf.Concurrency < 0 {
		errs = append(errs, usagef("--targets %s: concurrency %d is negative", path, tf.Concurrency))
	}
	if len(tf.Targets) == 0 {
		errs = append(errs, usagef("--targets %s: no targets", path))
	}
	seen := map[string]bool{}
	for i := range tf.Targets {
		t := &tf.Targets[i]
		if t.Name == "" && t.Host != "" {
			t.Name = t.Host
			if t.Port != 0 {
				t.Name += "_" + strconv.Itoa(t.Port)
			}
		}
		switch {
		case t.Host == "":
			errs = append(errs, usagef("--targets %s: target %d has no host", path, i+1))
		case !targetName.MatchString(t.Name):
			errs = append(errs, usagef("--targets %s: target name %q: use letters, digits, '.', '_' and '-' (it names the report directory)", path, t.Name))
		case seen[t.Name]:
			errs = append(errs, usagef("--targets %s: two targets are named %q", path, t.Name))
		}
		seen[t.Name] = true
		switch t.TLS {
		case "", harness.TLSNone, harness.TLSStartTLS, harness.TLSImplicit:
		default:
			errs = append(errs, usagef("--targets %s: target %s: tls %q is not none, starttls or implicit", path, t.Name, t.TLS))
		}
	}
	if len(errs) > 0 {
		return nil, joinUsage(errs)
	}
	return &tf, nil
}

// checkEntries refuses what a target's YAML has but a targets file
// must not (the strict decoder knows only the keys of a target).
func checkEntries(data []byte) error {
	var doc struct {
		Targets []yaml.Node `yaml:"targets"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	for i := range doc.Targets {
		if err := target.CheckFileEntry(&doc.Targets[i]); err != nil {
			return err
		}
	}
	return nil
}

// DefaultParallel is how many child probes run at once without
// --parallel: few, since every child holds connections to a live server.
const DefaultParallel = 2

// endpoint is the host:port a target's child connects to: two targets
// with the same endpoint (two accounts on one server) never run at once.
func (e TargetEntry) endpoint() string {
	return net.JoinHostPort(strings.ToLower(e.Host), strconv.Itoa(e.port()))
}

// port is the target's port, or the one the child probe defaults to.
func (e TargetEntry) port() int { return cmp.Or(e.Port, e.DefaultPort()) }

// effective is the entry's target with the command line's settings for
// every target: permissions, label filter, time limit, and the profile
// and the sessions at once unless the entry names its own.
func (e TargetEntry) effective(o runOptions) target.Target {
	t := e.Target
	t.Profile = cmp.Or(t.Profile, o.Profile)
	t.MaxConnections = cmp.Or(t.MaxConnections, o.MaxConnections)
	t.Allow, t.LabelFilter, t.Timeout, t.NoObserve = o.Allow, o.LabelFilter, o.Timeout, o.NoObserve
	return t
}

// childArgs are the arguments of the child probe for e, and its
// environment besides the parent's; the common options come from the
// parent's flags.
func childArgs(e TargetEntry, o runOptions, out string) (args, env []string) {
	args, env = target.Args(e.effective(o))
	args = append([]string{"run", "--quiet", "--out", out}, args...)
	if expect := cmp.Or(e.Expect, o.Expect); expect != "" {
		args = append(args, "--expect", expect)
	}
	if o.CompareProfiles {
		// Each target's child compares the profiles for its own report.
		args = append(args, "--compare-profiles")
	}
	// The summary table reads each child's JSON report.
	formats := []string{string(report.JSON)}
	for _, f := range o.Formats {
		if f != report.JSON {
			formats = append(formats, string(f))
		}
	}
	return append(args, "--format", strings.Join(formats, ",")), env
}

// targetResult is one child's outcome.
type targetResult struct {
	Target    TargetEntry
	Name, Dir string
	Code      int
	Report    *report.Report
	Err       error
}

func runTargets(ctx context.Context, o runOptions, env Env) (int, error) {
	tf, err := LoadTargets(o.Targets)
	if err != nil {
		return ExitUsage, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return ExitUsage, fmt.Errorf("report directory: %w", err)
	}
	if env.Executable == "" {
		return ExitUsage, errors.New("--targets: cannot find the probe executable to start one child per target")
	}
	parallel := cmp.Or(o.Parallel, tf.Concurrency, DefaultParallel)
	results := make([]targetResult, len(tf.Targets))
	sem := make(chan struct{}, parallel)
	// One token per host:port; a child takes it before a slot, so a
	// target waiting for its server does not hold a slot others could use.
	busy := map[string]chan struct{}{}
	for _, t := range tf.Targets {
		busy[t.endpoint()] = make(chan struct{}, 1)
	}
	var (
		wg    sync.WaitGroup
		logMu sync.Mutex // children finish concurrently; stderr takes one line at a time
	)
	for i, t := range tf.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = targetResult{Target: t, Name: t.Name, Code: ExitUsage}
			for _, c := range []chan struct{}{busy[t.endpoint()], sem} {
				select {
				case c <- struct{}{}:
					defer func() { <-c }()
				case <-ctx.Done():
					results[i].Err = ctx.Err()
					return
				}
			}
			results[i] = runChild(ctx, env, t, o)
			if !o.Quiet {
				logMu.Lock()
				fmt.Fprintf(env.Stderr, "%s: exit %d\n", t.Name, results[i].Code)
				logMu.Unlock()
			}
		}()
	}
	wg.Wait()

	var table bytes.Buffer
	writeTargetsTable(&table, results)
	if _, err := env.Stdout.Write(table.Bytes()); err != nil {
		return ExitUsage, err
	}
	paths, err := writeFleetSummary(o.Out, table.Bytes(), fleetRows(results, o))
	if err != nil {
		return ExitUsage, err
	}
	fmt.Fprintf(env.Stdout, "summary: %s\n", strings.Join(paths, " "))
	code := ExitConformant
	for _, r := range results {
		code = max(code, r.Code)
	}
	return code, nil
}

func runChild(ctx context.Context, env Env, t TargetEntry, o runOptions) targetResult {
	dir := filepath.Join(o.Out, t.Name)
	res := targetResult{Target: t, Name: t.Name, Dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Code, res.Err = ExitUsage, err
		return res
	}
	args, childEnv := childArgs(t, o, dir)
	out, err := runChildProbe(ctx, env.Executable, args, childEnv)
	// The child already scrubs; the log is kept for "why exit 2".
	_ = os.WriteFile(filepath.Join(dir, "probe.log"), out, 0o644)
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.Code = ExitConformant
	case errors.As(err, &ee) && ee.ExitCode() >= 0 && ee.ExitCode() <= ExitUsage:
		res.Code = ee.ExitCode()
	default:
		res.Code, res.Err = ExitUsage, err
	}
	if res.Code == ExitUsage && res.Err == nil {
		res.Err = errors.New(childError(string(out)))
	}
	if r, err := report.Load(filepath.Join(dir, report.JSON.FileName())); err == nil {
		res.Report = r
	}
	return res
}

// runChildProbe runs the probe executable with args, env added to the
// parent's environment, and returns what it printed (stdout and stderr
// together).
func runChildProbe(ctx context.Context, exe string, args, env []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(cmd.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// childError picks the child's error message out of its output.
func childError(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if msg, ok := strings.CutPrefix(strings.TrimSpace(l), "pop3probe: "); ok {
			return msg
		}
	}
	if s = strings.TrimSpace(s); s != "" {
		return firstLine(s)
	}
	return "no output"
}

func writeTargetsTable(w *bytes.Buffer, results []targetResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tEXIT\tCONFORMANT\tDEVIATES\tOTHER\tREPORT / ERROR")
	for _, r := range results {
		if r.Report == nil {
			msg := "no report"
			if r.Err != nil {
				msg = r.Err.Error()
			}
			fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t%s\n", r.Name, r.Code, msg)
			continue
		}
		c := r.Report.Summary.Counts
		other := r.Report.Summary.Total - c[verdict.Conformant] - c[verdict.Deviates]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", r.Name, r.Code, c[verdict.Conformant], c[verdict.Deviates], other, r.Dir)
	}
	_ = tw.Flush()
}
