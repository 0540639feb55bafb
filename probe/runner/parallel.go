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
	// Index numbers the worker from 0; the first Beside of them go on
	// taking the specs that never log in once the first process runs
	// its own specs, the others stop then.
	Index  int `json:"index"`
	Beside int `json:"beside"`
}

// message is one line a worker writes to its events pipe: a spec it
// starts, a spec that ended (Kept: the worker keeps its session for the
// next spec), that it saw the first process start its own specs and
// holds no session beyond its spec's (Lane), or at the end its whole
// report.
type message struct {
	Start  *started          `json:"start,omitempty"`
	Spec   *types.SpecReport `json:"spec,omitempty"`
	Kept   bool              `json:"kept,omitempty"`
	Lane   bool              `json:"lane,omitempty"`
	Report *types.Report     `json:"report,omitempty"`
	// Released: the worker let its kept session go while the first
	// process holds the workers (holdFile).
	Released bool `json:"released,omitempty"`
}

// started names a spec a worker took, and the Reading it reads for its
// group, if any.
type started struct {
	Key   string `json:"key"`
	Group string `json:"group,omitempty"`
}

// laneFile appears in the claim directory when the run's first process
// starts running specs of its own: from then on a worker may send the
// failed logins of a disruptive spec without touching a readonly spec's
// login, and only the workers that run beside the first process go on.
const laneFile = "lane"

// calmFile appears in the claim directory once no spec of the run's first
// process that contends for the maildrop lock or sends failed logins is
// left to run beside the workers: from then on the workers beside it take
// the specs that log in only to see how the server answers (LoginOnly).
const calmFile = "calm"

// holdFile is in the claim directory while the run's first process runs,
// before its own specs, a spec a worker gave back: the workers take no
// spec and keep no session meanwhile, so that the run stays within
// --max-connections and the spec does not meet the refusal it was given
// back for.
const holdFile = "hold"

// lead is the schedule of the run's first process. Against a remote
// host it starts the workers once the facts are measured: they share the
// readonly specs, one connection each. It waits for them before every
// spec that logs in and reads or changes the maildrop, so its own
// (reversible, mutating, disruptive) specs find them done; the workers
// that fit under --max-connections beside its sessions then run the specs
// that never log in (NoLogin). It runs every spec no worker ran to the
// end: its own, and any a worker gave back as busy.
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

	// Set by Begin when workers run.
	t      *harness.Target
	dir    string
	beside int
	wg     sync.WaitGroup
	errs   []error
	lane   sync.Once
	calm   sync.Once
	ended  sync.Once
	// laneOn is set once the workers past the ones beside have stopped;
	// alone while the spec is one that runs with no worker left, slow
	// while it waits on a server timer. Together they say how many
	// connections this process may hold, one opened ahead included.
	laneOn atomic.Bool
	alone  atomic.Bool
	slow   atomic.Bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever the state below changes
	pool    bool          // workers were started
	live    int           // workers not yet ended (started or still to start)
	exited  map[int]bool
	running map[int]string // the spec each worker runs now
	holds   map[int]bool   // workers keeping a session between specs
	owner   map[string]int // spec keys and groups to the worker that took them
	// observing is true while the parameter measurement runs.
	observing bool
	done      map[string]bool
	givenKeys map[string]bool
	reports   []types.Report
	// given counts the specs workers gave back; refusals are why
	// workers stopped taking specs.
	given    int
	refusals []string
}

func (l *lead) Begin(ctx context.Context, t *harness.Target) error {
	if note := l.share(ctx, t); note != "" {
		ginkgo.AddReportEntry(contract.EntrySessions, note, ginkgo.ReportEntryVisibilityNever)
	}
	return nil
}

// share starts the workers when the run and the server allow more than
// one session at once. It returns how the specs are shared when that is
// settled now ("" when workers run: End says).
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
		// Most likely the server locks the maildrop: each spec must find
		// the last one's session ended.
		t.Recorder().SettleSessions()
		slog.Info("specs run one at a time", "why", why)
		l.observeFirst(ctx, t)
		return "one at a time: " + why
	}
	dir, err := os.MkdirTemp("", "pop3probe-claims-")
	if err != nil {
		l.observeFirst(ctx, t)
		return "one at a time: " + err.Error()
	}
	// The workers outlive BeforeSuite, whose context ends with it.
	wctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), l.deadline)
	// Beside this process's own sessions the workers keep the run within
	// --max-connections.
	l.t, l.dir, l.beside = t, dir, max(l.workers-leadConns, 0)
	l.errs = make([]error, l.workers)
	l.mu.Lock()
	l.pool, l.live = true, l.workers
	l.observing = l.observe != nil
	l.mu.Unlock()
	t.DialAhead(l.room)
	j := job{Config: l.cfg, Facts: t.Facts(), ClaimDir: dir, LabelFilter: l.labelFilter, Timeout: time.Until(l.deadline), Beside: l.beside}
	// first waits for the workers that start now.
	var first sync.WaitGroup
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
			err := l.runWorker(wctx, i, j)
			l.update(func() {
				l.errs[i] = err
				l.exited[i] = true
				delete(l.running, i)
				l.live--
			})
		}()
	}
	now := l.workers
	if l.observe != nil {
		now--
	}
	for i := range now {
		start(i, &l.wg, &first)
	}
	if l.observe != nil {
		// The measurement of server parameters takes the last worker's
		// connection; that worker starts when it is done and takes what
		// specs are left. This process's own specs wait for it. A
		// server that refuses the measurement a connection for the
		// workers' sake is measured once they are done.
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
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.observe(wctx, t.Facts(), awaitIdle)
			l.update(func() { l.observing = false })
			start(l.workers-1, &l.wg)
		}()
	}
	go func() { l.wg.Wait(); cancel() }()
	return ""
}

// End waits for the workers, says how the specs were shared and removes
// the claims.
func (l *lead) End(*harness.Target) {
	l.ended.Do(func() {
		if !l.isPool() {
			return
		}
		l.wg.Wait()
		defer os.RemoveAll(l.dir)
		note := fmt.Sprintf("readonly specs on up to %d at once, the others one at a time", l.workers)
		if l.beside > 0 {
			note = fmt.Sprintf("readonly specs on up to %d at once, the specs that never log in or log in only to see the server answer on up to %d beside the others, which run one at a time", l.workers, l.beside)
		}
		l.mu.Lock()
		if len(l.refusals) > 0 {
			note += fmt.Sprintf("; %s stopped after a refusal (%s)", harness.Count(len(l.refusals), "worker"), l.refusals[0])
		}
		if l.given > 0 {
			note += fmt.Sprintf("; %s given back to run alone", harness.Count(l.given, "spec"))
		}
		for i, err := range l.errs {
			if err != nil {
				// The specs that worker did not finish ran here.
				note += fmt.Sprintf("; worker %d: %v", i+1, err)
			}
		}
		l.mu.Unlock()
		ginkgo.AddReportEntry(contract.EntrySessions, note, ginkgo.ReportEntryVisibilityNever)
	})
}

// observeFirst measures the server's parameters before any spec, when the
// run measures them at all: they describe the maildrop as the facts found
// it, before a mutating spec changes it, whether or not workers run.
func (l *lead) observeFirst(ctx context.Context, t *harness.Target) {
	if l.observe != nil {
		l.observe(ctx, t.Facts(), nil)
	}
}

// Here runs every spec no worker ran to its end. A spec the workers may
// take is awaited: it ends there, or comes back here. Before this
// process's first spec of its own it lets the workers beside it go on,
// and before hostile input or a wait on a server timer it waits until
// they have ended.
func (l *lead) Here(s conformance.SpecInfo) bool {
	if !l.isPool() {
		return true
	}
	shared := s.Concurrent() || s.Beside()
	runs := s.Runs(l.cfg.Allow)
	if runs && !s.Concurrent() {
		l.startLane()
	}
	if l.calmAt(s, runs) {
		l.signalCalm()
	}
	slow := runs && s.Slow()
	l.alone.Store(runs && s.Alone())
	l.slow.Store(slow)
	if slow {
		// A timer is measured on a connection that has just opened.
		l.t.Release()
	}
	if runs && s.Alone() {
		l.await(func() bool { return l.live == 0 })
	}
	if !shared {
		return true
	}
	l.await(func() bool { return l.resolved(s) })
	l.mu.Lock()
	here := !l.done[s.Key]
	l.mu.Unlock()
	if here && !l.laneOn.Load() {
		l.makeRoom()
	}
	return here
}

// makeRoom holds the workers (holdFile) and waits until the connections
// they hold (their specs' and their kept sessions) leave room for a spec
// of this process: before its own specs it has none of its own
// (lead.room). Once a worker was refused, the server wants fewer sessions
// than the run's limit: the spec then waits until the workers hold none.
// The parameter measurement is not waited for: it may itself wait for
// the workers, which are held.
func (l *lead) makeRoom() {
	if f, err := os.Create(filepath.Join(l.dir, holdFile)); err == nil {
		f.Close()
	}
	l.await(func() bool {
		held := len(l.running)
		for i, h := range l.holds {
			if h && !l.exited[i] && l.running[i] == "" {
				held++
			}
		}
		if len(l.refusals) > 0 {
			return held == 0
		}
		return held+leadConns <= l.workers
	})
}

// Ended lets the workers go on once a spec this process ran while holding
// them has ended.
func (l *lead) Ended(string, string) {
	_ = os.Remove(filepath.Join(l.dir, holdFile))
}

// leadConns is how many connections the first process holds beside the
// workers: a lock spec's two sessions, or a spec's session and the next
// one's, opened ahead.
const leadConns = 2

// room is how many connections this process may hold now, the one opened
// ahead for its next dial included (harness.Target.DialAhead): none
// before its own specs start, or while one waits on a server timer;
// leadConns beside the workers that run on; every connection of the run
// once the workers have ended for a spec that must run alone.
func (l *lead) room() int {
	switch {
	case !l.laneOn.Load() || l.slow.Load():
		return 0
	case l.alone.Load():
		return l.workers
	}
	return leadConns
}

// calmAt says whether, once at s, the workers beside this process may
// take the LoginOnly specs: this process is past its own specs, or the
// workers are to end before s, or s marks or removes mail after the
// disruptive specs (the priorities put those first, after the marked
// Reading) and no worker was refused a session. A server that refused
// one may refuse this process a login while login-only sessions are
// open, and that refusal must not become a verdict.
func (l *lead) calmAt(s conformance.SpecInfo, runs bool) bool {
	switch {
	case s.Beside() || s.BesideMail():
		return true
	case !runs:
		return false
	case s.Alone():
		return true
	case s.Class == conformance.Mutating || (s.Class == conformance.Reversible && s.Group == ""):
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.refusals) == 0
	}
	return false
}

// signalCalm lets the workers beside this process take the LoginOnly
// specs.
func (l *lead) signalCalm() {
	l.calm.Do(func() {
		if f, err := os.Create(filepath.Join(l.dir, calmFile)); err == nil {
			f.Close()
		}
	})
}

// startLane tells the workers that this process starts specs of its own:
// those past the ones that fit beside it take no more specs, and this
// process waits until they, and the parameter measurement, are done.
func (l *lead) startLane() {
	l.lane.Do(func() {
		if f, err := os.Create(filepath.Join(l.dir, laneFile)); err == nil {
			f.Close()
		}
		if l.cfg.Allow.Disruptive && l.beside > 0 {
			l.t.Recorder().FailedLoginsBeside()
		}
		l.await(func() bool {
			if l.observing {
				return false
			}
			for i := l.beside; i < l.workers; i++ {
				if l.running[i] != "" {
					return false
				}
			}
			// A session a worker kept between its specs counts
			// against --max-connections until it says it let it go.
			for i, h := range l.holds {
				if h && !l.exited[i] {
					return false
				}
			}
			return true
		})
		l.laneOn.Store(true)
	})
}

// resolved says whether nothing is left to wait for of s: a worker ended
// it or gave it back, or no worker that could run it is left. Call it
// with mu held.
func (l *lead) resolved(s conformance.SpecInfo) bool {
	if l.done[s.Key] || l.givenKeys[s.Key] || l.live == 0 {
		return true
	}
	w, ok := l.owner[s.Key]
	if !ok && s.Group != "" {
		w, ok = l.owner["group:"+s.Group]
	}
	return ok && l.exited[w]
}

// elsewhere says whether a worker ran sr, or is meant to: a spec the
// workers may take and did not give back.
func (l *lead) elsewhere(sr types.SpecReport) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := conformance.SpecKey(sr)
	if l.done[key] {
		return true
	}
	if !l.pool || l.givenKeys[key] {
		return false
	}
	labels := sr.Labels()
	if contract.Has(labels, contract.Slow) || contract.Has(labels, contract.ReferenceOnly) {
		return false
	}
	return contract.Has(labels, contract.Readonly) || contract.Has(labels, contract.NoLogin)
}

func (l *lead) isPool() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pool
}

// update changes the shared state under mu and wakes the waiters.
func (l *lead) update(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited == nil {
		l.exited, l.running, l.owner, l.holds = map[int]bool{}, map[int]string{}, map[string]int{}, map[int]bool{}
		l.done, l.givenKeys = map[string]bool{}, map[string]bool{}
	}
	f()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// await blocks until cond, called with mu held, holds, or the run's
// deadline passes.
func (l *lead) await(cond func() bool) {
	timer := time.NewTimer(time.Until(l.deadline))
	defer timer.Stop()
	for {
		l.mu.Lock()
		if cond() {
			l.mu.Unlock()
			return
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return
		}
	}
}

// runWorker starts one worker and reads its events until it ends.
func (l *lead) runWorker(ctx context.Context, n int, j job) error {
	j.Index = n
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
		case m.Start != nil:
			l.update(func() {
				l.running[n] = m.Start.Key
				l.owner[m.Start.Key] = n
				if m.Start.Group != "" {
					l.owner["group:"+m.Start.Group] = n
				}
			})
		case m.Lane, m.Released:
			l.update(func() { l.holds[n] = false })
		case m.Spec != nil:
			key, why := conformance.SpecKey(*m.Spec), busy(*m.Spec)
			l.update(func() {
				delete(l.running, n)
				l.holds[n] = m.Kept
				if why != "" {
					l.givenKeys[key] = true
				} else {
					l.done[key] = true
				}
			})
			if why != "" {
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
	l.update(func() {
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
	})
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
// spec no other worker has claimed, and the specs that never log in,
// until a refusal suggests the server wants fewer sessions; then it
// takes no more. The specs of one Reading are claimed together, so one
// worker reads it for all of them.
type worker struct {
	dir      string
	index    int
	beside   int
	allow    harness.Permissions
	deadline time.Time
	send     func(message)
	stopped  atomic.Bool
	mu       sync.Mutex
	groups   map[string]bool // the groups this worker claimed
	// t is the worker's target, set by Begin; lane lets its kept
	// session go once the first process runs its own specs.
	t    *harness.Target
	lane sync.Once
}

// Begin lets the target keep a readonly spec's session for the next one
// until the first process starts its own specs: workers run only where
// the server took two logins of one account at once.
func (w *worker) Begin(_ context.Context, t *harness.Target) error {
	w.t = t
	t.KeepSessions(func() bool { return !w.stopped.Load() && !w.laneStarted() })
	return nil
}

func (w *worker) End(*harness.Target) {}

// holds says whether the worker keeps a session for its next spec.
func (w *worker) holds() bool { return w.t != nil && w.t.HoldsSession() }

// seeLane lets the kept session go once the first process runs specs of
// its own, and says so: it waits for that before its first spec.
func (w *worker) seeLane() {
	if !w.laneStarted() {
		return
	}
	w.lane.Do(func() {
		if w.t != nil {
			w.t.Release()
		}
		w.send(message{Lane: true})
	})
}

func (w *worker) Here(s conformance.SpecInfo) bool {
	w.seeLane()
	if w.stopped.Load() || !(s.Concurrent() || s.Beside()) {
		return false
	}
	if !s.Concurrent() && s.Runs(w.allow) {
		// Failed logins of a disruptive spec wait until no readonly
		// spec of the run is logging in (the lead's own specs have
		// started): a lockout they cause must not pass for the
		// server's answer to one.
		w.awaitLane()
		w.seeLane()
	}
	calm := !s.BesideMail() || !w.hasLane()
	if !calm {
		calm = w.awaitCalm()
	}
	if w.index >= w.beside && w.laneStarted() {
		w.stopped.Store(true)
		return false
	}
	if !calm {
		return false // the run's time is up: the first process runs it
	}
	w.poll(func() bool { return !w.held() })
	if !w.take(s) {
		return false
	}
	w.send(message{Start: &started{Key: s.Key, Group: s.Group}})
	return true
}

// take claims s, or its Reading's group, for this worker.
func (w *worker) take(s conformance.SpecInfo) bool {
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

func (w *worker) laneStarted() bool {
	_, err := os.Stat(filepath.Join(w.dir, laneFile))
	return err == nil
}

// hasLane says whether the run's first process may run specs of its own
// beside the workers: the run allows more than readonly specs.
func (w *worker) hasLane() bool {
	a := w.allow
	return a.AllowsReversible() || a.Disruptive || a.Slow
}

func (w *worker) calm() bool {
	_, err := os.Stat(filepath.Join(w.dir, calmFile))
	return err == nil
}

// awaitCalm waits until the first process lets the LoginOnly specs run
// beside it, the worker is to stop (it is not one of those beside), or
// the run's time is up, and says whether they may run. A session kept
// meanwhile goes once the first process runs specs of its own, which
// waits for that.
func (w *worker) awaitCalm() bool {
	w.poll(func() bool {
		w.seeLane()
		return w.calm() || (w.index >= w.beside && w.laneStarted())
	})
	return w.calm()
}

// awaitLane waits until the lead runs specs of its own, or the run's time
// is up.
func (w *worker) awaitLane() { w.poll(w.laneStarted) }

// poll waits until done says so or the run's time is up: the first
// process speaks to the workers through files in the claim directory.
// Meanwhile a session kept for the next spec goes while the first
// process holds the workers.
func (w *worker) poll(done func() bool) {
	for !done() && time.Now().Before(w.deadline) {
		if w.held() && w.holds() {
			w.t.Release()
			w.send(message{Released: true})
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// held says whether the first process holds the workers (holdFile).
func (w *worker) held() bool {
	_, err := os.Stat(filepath.Join(w.dir, holdFile))
	return err == nil
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
	w := &worker{dir: j.ClaimDir, index: j.Index, beside: j.Beside, allow: cfg.Allow,
		deadline: time.Now().Add(j.Timeout), send: send}
	conformance.UseSchedule(w)
	r, err := runSuite(ctx, cfg, j.LabelFilter, j.Timeout, func(sr types.SpecReport) {
		if sr.LeafNodeType == types.NodeTypeIt && sr.Failure.Message != contract.RunElsewhere {
			send(message{Spec: &sr, Kept: w.holds()})
		}
	})
	if err != nil {
		return err
	}
	r = ranHere(r)
	send(message{Report: &r})
	return nil
}
