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
)

// TargetsFile is the --targets file: many servers, audited by one child
// probe each, since Ginkgo runs one suite per process.
type TargetsFile struct {
	// Concurrency bounds the child probes running at once; --parallel
	// overrides it, and without either it is DefaultParallel.
	Concurrency int           `yaml:"concurrency"`
	Targets     []TargetEntry `yaml:"targets"`
}

// TargetEntry is one server. Passwords are named, not written: an
// environment variable the children inherit, or a file.
type TargetEntry struct {
	Name               string `yaml:"name"`
	Host               string `yaml:"host"`
	Port               int    `yaml:"port"`
	TLS                string `yaml:"tls"` // none, starttls, implicit
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	ServerName         string `yaml:"server_name"`
	CAFile             string `yaml:"ca_file"`
	User               string `yaml:"user"`
	PasswordEnv        string `yaml:"password_env"`
	PasswordFile       string `yaml:"password_file"`
	User2              string `yaml:"user2"`
	Password2Env       string `yaml:"password2_env"`
	Password2File      string `yaml:"password2_file"`
	MailboxFixture     string `yaml:"mailbox_fixture"`
	// Profile overrides --profile for this target.
	Profile string `yaml:"profile"`
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
		case "", "none", "starttls", "implicit":
		default:
			errs = append(errs, usagef("--targets %s: target %s: tls %q is not none, starttls or implicit", path, t.Name, t.TLS))
		}
	}
	if len(errs) > 0 {
		return nil, joinUsage(errs)
	}
	return &tf, nil
}

// DefaultParallel is how many child probes run at once without
// --parallel: few, since every child holds connections to a live server.
const DefaultParallel = 2

// endpoint is the host:port a target's child connects to: two targets
// with the same endpoint (two accounts on one server) never run at once.
func (t TargetEntry) endpoint() string {
	return net.JoinHostPort(strings.ToLower(t.Host), strconv.Itoa(t.port()))
}

// port is the target's port, or the one the child probe defaults to.
func (t TargetEntry) port() int {
	switch {
	case t.Port != 0:
		return t.Port
	case t.TLS == "implicit":
		return 995
	}
	return 110
}

// childArgs are the flags of the child probe for t; the common options
// come from the parent's flags.
func childArgs(t TargetEntry, o runOptions, out string) []string {
	a := []string{"run", "--host", t.Host, "--quiet", "--out", out}
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	if t.Port != 0 {
		a = append(a, "--port", strconv.Itoa(t.Port))
	}
	switch t.TLS {
	case "implicit":
		a = append(a, "--tls")
	case "starttls":
		a = append(a, "--starttls")
	}
	if t.InsecureSkipVerify {
		a = append(a, "--insecure-skip-verify")
	}
	add("--server-name", t.ServerName)
	add("--ca-file", t.CAFile)
	add("--user", t.User)
	add("--password-env", t.PasswordEnv)
	add("--password-file", t.PasswordFile)
	add("--user2", t.User2)
	add("--password2-env", t.Password2Env)
	add("--password2-file", t.Password2File)
	add("--mailbox-fixture", t.MailboxFixture)
	expect := o.Expect
	if t.Expect != "" {
		expect = t.Expect
	}
	add("--expect", expect)
	prof := o.Profile
	if t.Profile != "" {
		prof = t.Profile
	}
	add("--profile", prof)
	if o.AllowReversible {
		a = append(a, "--allow-reversible")
	}
	if o.AllowMutating {
		a = append(a, "--allow-mutating")
	}
	if o.AllowDisruptive {
		a = append(a, "--allow-disruptive")
	}
	if o.AllowSlow {
		a = append(a, "--slow")
	}
	add("--label-filter", o.LabelFilter)
	a = append(a, "--timeout", o.Timeout.String())
	if o.CompareProfiles {
		// Each target's child compares the profiles for its own report.
		a = append(a, "--compare-profiles")
	}
	// The summary table reads each child's JSON report.
	formats := []string{string(report.JSON)}
	for _, f := range o.Formats {
		if f != report.JSON {
			formats = append(formats, string(f))
		}
	}
	return append(a, "--format", strings.Join(formats, ","))
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
	cmd := exec.CommandContext(ctx, env.Executable, childArgs(t, o, dir)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	// The child already scrubs; the log is kept for "why exit 2".
	_ = os.WriteFile(filepath.Join(dir, "probe.log"), out.Bytes(), 0o644)
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
		res.Err = errors.New(childError(out.String()))
	}
	if r, err := report.Load(filepath.Join(dir, report.JSON.FileName())); err == nil {
		res.Report = r
	}
	return res
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
