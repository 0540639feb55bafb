package runner

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/contract"
	"github.com/pop3conformance/pop3conformance/suites/conformance"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// WorkerArg is the hidden first argument that makes the probe binary a
// worker of another probe run (see Worker).
const WorkerArg = "internal-worker"

// job is what the run's first process hands a worker on its standard
// input: the whole target, passwords included, so that no secret goes
// on a command line or into the environment.
type job struct {
	Config      harness.Config `json:"config"`
	Facts       harness.Facts  `json:"facts"`
	ClaimDir    string         `json:"claim_dir"`
	LabelFilter string         `json:"label_filter"`
	Timeout     time.Duration  `json:"timeout"`
}

// message is one line a worker writes to its events pipe: a spec that
// ended, or at the end its whole report.
type message struct {
	Spec   *types.SpecReport `json:"spec,omitempty"`
	Report *types.Report     `json:"report,omitempty"`
}

// lead is the schedule of the run's first process. Against a remote
// host it starts the workers once the facts are measured and waits for
// them: they share the readonly specs, one connection each. It then runs
// every spec no worker ran to the end: the others, and any a worker gave
// back as busy.
type lead struct {
	exe         string
	workers     int
	cfg         harness.Config
	labelFilter string
	deadline    time.Time
	// specEnded feeds the progress display with the workers' specs.
	specEnded func(types.SpecReport)
	// observe, when set, measures the server's parameters next to the
	// workers; awaitIdle (nil when none run) waits until they have ended.
	observe func(ctx context.Context, facts harness.Facts, awaitIdle func(context.Context) error)

	mu      sync.Mutex
	done    map[string]bool
	reports []types.Report
	// given counts the specs workers gave back; refusals are why
	// workers stopped taking specs.
	given    int
	refusals []string
}

func (l *lead) Begin(ctx context.Context, t *harness.Target) error {
	note := l.share(ctx, t)
	ginkgo.AddReportEntry(contract.EntrySessions, note, ginkgo.ReportEntryVisibilityNever)
	return nil
}

// share runs the workers when the run and the server allow more than one
// session at once, and says how the specs were shared.
func (l *lead) share(ctx context.Context, t *harness.Target) string {
	switch {
	case l.exe == "":
		return "one at a time (this program starts no worker processes)"
	case l.workers < 2:
		l.observeFirst(ctx, t)
		return "one at a time (--max-connections 1)"
	}
	ok, why, err := t.ConcurrentLogins(ctx)
	if err != nil {
		why = "two sessions at once could not be tried: " + err.Error()
	}
	if err != nil || !ok {
		slog.Info("specs run one at a time", "why", why)
		l.observeFirst(ctx, t)
		return "one at a time: " + why
	}
	facts := t.Facts()
	dir, err := os.MkdirTemp("", "pop3probe-claims-")
	if err != nil {
		return "one at a time: " + err.Error()
	}
	defer os.RemoveAll(dir)
	j := job{Config: l.cfg, Facts: facts, ClaimDir: dir, LabelFilter: l.labelFilter, Timeout: time.Until(l.deadline)}
	// wg waits for everything; first for the workers that start now.
	var wg, first sync.WaitGroup
	errs := make([]error, l.workers)
	start := func(i int, group ...*sync.WaitGroup) {
		for _, g := range group {
			g.Add(1)
		}
		go func() {
			defer func() {
				for _, g := range group {
					g.Done()
				}
			}()
			errs[i] = l.runWorker(ctx, i, j)
		}()
	}
	now := l.workers
	if l.observe != nil {
		now--
	}
	for i := range now {
		start(i, &wg, &first)
	}
	if l.observe != nil {
		// The measurement of server parameters takes the last worker's
		// connection; that worker starts when it is done and takes what
		// specs are left. Mutating specs run only after both. A server
		// that refuses the measurement a connection for the workers'
		// sake is measured once they are done.
		awaitIdle := func(ctx context.Context) error {
			idle := make(chan struct{})
			go func() { first.Wait(); close(idle) }()
			select {
			case <-idle:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.observe(ctx, facts, awaitIdle)
			start(l.workers-1, &wg)
		}()
	}
	wg.Wait()
	note := fmt.Sprintf("readonly specs on up to %d at once, the others one at a time", l.workers)
	l.mu.Lock()
	if len(l.refusals) > 0 {
		note += fmt.Sprintf("; %s stopped after a refusal (%s)", harness.Count(len(l.refusals), "worker"), l.refusals[0])
	}
	if l.given > 0 {
		note += fmt.Sprintf("; %s given back to run alone", harness.Count(l.given, "spec"))
	}
	l.mu.Unlock()
	for i, err := range errs {
		if err != nil {
			// The specs that worker did not finish run here.
			note += fmt.Sprintf("; worker %d: %v", i+1, err)
		}
	}
	return note
}

// observeFirst measures the server's parameters before any spec, when the
// run measures them at all: they describe the maildrop as the facts found
// it, before a mutating spec changes it, whether or not workers run.
func (l *lead) observeFirst(ctx context.Context, t *harness.Target) {
	if l.observe != nil {
		l.observe(ctx, t.Facts(), nil)
	}
}

// Here runs every spec no worker ran to its end.
func (l *lead) Here(s conformance.SpecInfo) bool {
	return !l.ranElsewhere(s.Key)
}

func (l *lead) Ended(string, string) {}

func (l *lead) ranElsewhere(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done[key]
}

// runWorker starts one worker and reads its events until it ends.
func (l *lead) runWorker(ctx context.Context, n int, j job) error {
	in, err := json.Marshal(j)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, l.exe, WorkerArg)
	cmd.Stdin = bytes.NewReader(in)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start worker %d: %w", n+1, err)
	}
	w.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 256<<20)
	var got *types.Report
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		switch {
		case m.Spec != nil:
			if why := busy(*m.Spec); why != "" {
				l.givenBack(why)
				slog.Debug("given back to run alone", "spec", m.Spec.FullText(), "why", why)
			} else if l.specEnded != nil {
				l.specEnded(*m.Spec)
			}
		case m.Report != nil:
			got = m.Report
		}
	}
	werr := cmd.Wait()
	if got == nil {
		return fmt.Errorf("worker %d ended without a report: %v", n+1, werr)
	}
	l.keep(*got)
	return nil
}

// keep takes a worker's report: the specs it ran to the end count as
// done; those it gave back as busy are left for this process.
func (l *lead) keep(r types.Report) {
	var specs types.SpecReports
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = map[string]bool{}
	}
	for _, sr := range r.SpecReports {
		if sr.LeafNodeType == types.NodeTypeIt {
			if busy(sr) != "" {
				continue
			}
			l.done[conformance.SpecKey(sr)] = true
		}
		specs = append(specs, sr)
	}
	r.SpecReports = specs
	l.reports = append(l.reports, r)
}

// givenBack counts a spec a worker gave back; a refusal (not a second
// connection of the spec's own) also ended that worker's share.
func (l *lead) givenBack(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.given++
	if why != harness.BusySecondConnection {
		l.refusals = append(l.refusals, why)
	}
}

// busy says why a spec's result may be the run's own doing, "" when not.
func busy(sr types.SpecReport) string {
	for _, e := range sr.ReportEntries {
		if e.Name == contract.EntryBusy {
			return cmp.Or(e.Value.String(), "busy")
		}
	}
	return ""
}

// ranHere drops the specs a report shows as run by another process.
func ranHere(r types.Report) types.Report {
	var specs types.SpecReports
	for _, sr := range r.SpecReports {
		if sr.LeafNodeType == types.NodeTypeIt && sr.State == types.SpecStateSkipped && sr.Failure.Message == contract.RunElsewhere {
			continue
		}
		specs = append(specs, sr)
	}
	r.SpecReports = specs
	return r
}

// worker is the schedule of a worker process: it takes every readonly
// spec no other worker has claimed, until a refusal suggests the server
// wants fewer sessions; then it takes no more. The specs of one Reading
// are claimed together, so one worker reads it for all of them.
type worker struct {
	dir     string
	stopped atomic.Bool
	mu      sync.Mutex
	groups  map[string]bool // the groups this worker claimed
}

func (w *worker) Begin(context.Context, *harness.Target) error { return nil }

func (w *worker) Here(s conformance.SpecInfo) bool {
	if w.stopped.Load() || !s.Concurrent() {
		return false
	}
	if s.Group == "" {
		return w.claim(s.Key)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.groups[s.Group] {
		return true
	}
	sum := sha256.Sum256([]byte(s.Group))
	if !w.claim("group-" + hex.EncodeToString(sum[:12])) {
		return false
	}
	if w.groups == nil {
		w.groups = map[string]bool{}
	}
	w.groups[s.Group] = true
	return true
}

// claim takes name for this worker unless another already has it.
func (w *worker) claim(name string) bool {
	f, err := os.OpenFile(filepath.Join(w.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func (w *worker) Ended(_, busy string) {
	if busy != "" && busy != harness.BusySecondConnection {
		slog.Info("worker takes no more specs", "why", busy)
		w.stopped.Store(true)
	}
}

// Worker runs the worker side of a probe run: it reads its job from in,
// runs the specs it claims and writes each ended spec, then its report,
// as JSON lines to events. The probe binary runs it when started with
// WorkerArg.
func Worker(ctx context.Context, in io.Reader, events io.Writer) error {
	var j job
	if err := json.NewDecoder(in).Decode(&j); err != nil {
		return fmt.Errorf("worker job: %w", err)
	}
	if j.Timeout <= 0 {
		return errors.New("worker job: no time left")
	}
	if !ran.CompareAndSwap(false, true) {
		return ErrAlreadyRan
	}
	cfg := j.Config
	cfg.Preflighted, cfg.Worker, cfg.Facts = true, true, &j.Facts
	var mu sync.Mutex
	enc := json.NewEncoder(events)
	send := func(m message) {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(m); err != nil {
			slog.Debug("worker events", "err", err)
		}
	}
	conformance.UseSchedule(&worker{dir: j.ClaimDir})
	r, err := runSuite(ctx, cfg, j.LabelFilter, j.Timeout, func(sr types.SpecReport) {
		if sr.LeafNodeType == types.NodeTypeIt && sr.Failure.Message != contract.RunElsewhere {
			send(message{Spec: &sr})
		}
	})
	if err != nil {
		return err
	}
	r = ranHere(r)
	send(message{Report: &r})
	return nil
}
