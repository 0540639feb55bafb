package cli

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/probe/target"
)

// compareSlack is how long past its own --timeout a child may take before
// it is killed: a child that ran out of time still writes its report.
const compareSlack = time.Minute

// comparedProfiles lists the bundled profiles the children judge by:
// every one but the chosen, whose entry is the main run itself.
func comparedProfiles(chosen string) []string {
	var out []string
	for _, name := range profile.Bundled() {
		if name != chosen {
			out = append(out, name)
		}
	}
	return out
}

// compareChild is the child probe that judges the main run's target by
// profile prof and writes its JSON report into out: its arguments, and
// its environment besides the parent's (the passwords, see target.Args).
func compareChild(o runOptions, prof, out string) (args, env []string) {
	t := o.Request
	if t.Host == "" {
		// The child's private server behaves like the main run's, so each
		// profile's expectations judge the same behaviour.
		t.ReferenceProfile = cmp.Or(t.ReferenceProfile, t.Profile)
	}
	// The main run measures the server's parameters; the children judge.
	t.Profile, t.NoObserve = prof, true
	args, env = target.Args(t)
	return append([]string{"run", "--format", string(report.JSON), "--quiet", "--out", out}, args...), env
}

// comparison is the --compare-profiles work of one run: a child probe per
// other bundled profile, since Ginkgo runs one suite per process.
type comparison struct {
	env    Env
	o      runOptions
	ctx    context.Context
	cancel context.CancelFunc
	// done closes when every child finished; nil until they start.
	done   chan struct{}
	scores []report.ProfileScore
}

// newComparison returns nil without --compare-profiles; the methods of a
// nil comparison do nothing. ctx bounds the children, not the main run's
// --timeout: each child has its own.
func newComparison(ctx context.Context, env Env, o runOptions) *comparison {
	if !o.CompareProfiles {
		return nil
	}
	c := &comparison{env: env, o: o}
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c
}

// begin starts the children for the bundled server at once, alongside
// the main run: each child starts a private server, so nothing is shared
// and the comparison costs about one run of wall time. A remote host
// waits for the main run (see apply).
func (c *comparison) begin() {
	if c == nil || c.o.Host != "" {
		return
	}
	c.launch(nil)
}

func (c *comparison) launch(step func(string)) {
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		c.scores = runComparison(c.ctx, c.env, c.o, comparedProfiles(c.o.Profile), step)
	}()
}

// stop kills the children still running and waits for them, so none
// outlives the probe and their directories are gone.
func (c *comparison) stop() {
	if c == nil {
		return
	}
	c.cancel()
	if c.done != nil {
		<-c.done
	}
}

// apply waits for the children, starting them first for a remote host,
// and puts the scores into r. Against a remote host they run after the
// main run and one at a time: runs in parallel against one mailbox would
// contend for its maildrop lock and spoil each other's verdicts.
func (c *comparison) apply(r *report.Report, prog Progress) {
	if c == nil {
		return
	}
	step := func(string) {}
	if s, ok := prog.(Stepper); ok {
		step = s.Step
	}
	if c.done == nil {
		if r.SuiteError != "" {
			// The other profiles would meet the same wall.
			r.Warnings = append(r.Warnings, "--compare-profiles: skipped, the run under --profile could not judge the target")
			return
		}
		c.launch(step)
	} else {
		step("waiting for the runs under the other bundled profiles")
	}
	<-c.done
	r.SetProfileScores(c.scores)
}

// runComparison runs one child per profile and returns their scores in
// the order of profiles: all at once for the bundled server, one after
// another for a remote host. step, when not nil, hears about each
// sequential run.
func runComparison(ctx context.Context, env Env, o runOptions, profiles []string, step func(string)) []report.ProfileScore {
	scores := make([]report.ProfileScore, len(profiles))
	dir, err := os.MkdirTemp("", "probe-compare-")
	if err != nil {
		for i, p := range profiles {
			scores[i] = report.ProfileScore{Name: p, Error: fmt.Sprintf("directory for the child's report: %v", err)}
		}
		return scores
	}
	// The children's reports are read into scores; nobody asked for the
	// files.
	defer os.RemoveAll(dir)
	if o.Host != "" {
		for i, p := range profiles {
			if step != nil {
				step(fmt.Sprintf("running the specs under profile %s (%d of %d)", p, i+1, len(profiles)))
			}
			scores[i] = runCompareChild(ctx, env, o, p, filepath.Join(dir, strconv.Itoa(i)))
		}
		return scores
	}
	var wg sync.WaitGroup
	for i, p := range profiles {
		wg.Go(func() { scores[i] = runCompareChild(ctx, env, o, p, filepath.Join(dir, strconv.Itoa(i))) })
	}
	wg.Wait()
	return scores
}

// runCompareChild runs the child probe for profile prof with its report
// in out and scores that report. A child without a report gives an entry
// with its error: one failed profile must not sink the whole probe.
func runCompareChild(ctx context.Context, env Env, o runOptions, prof, out string) report.ProfileScore {
	if ctx.Err() != nil {
		return report.ProfileScore{Name: prof, Error: "not run: " + ctx.Err().Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout+compareSlack)
	defer cancel()
	args, childEnv := compareChild(o, prof, out)
	console, runErr := runChildProbe(ctx, env.Executable, args, childEnv)
	if r, err := report.Load(filepath.Join(out, report.JSON.FileName())); err == nil {
		return report.ScoreOf(prof, r)
	}
	why := "no output"
	switch {
	case strings.TrimSpace(string(console)) != "":
		why = childError(string(console))
	case runErr != nil:
		why = runErr.Error()
	}
	return report.ProfileScore{Name: prof, Error: "the run under profile " + prof + " wrote no report: " + why}
}
