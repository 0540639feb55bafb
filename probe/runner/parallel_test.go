package runner

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/suites/conformance"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// TestWorkersClaim: every readonly spec goes to exactly one worker, the
// specs of one Reading to the same one, whatever order the workers ask in;
// the others stay in the first process.
func TestWorkersClaim(t *testing.T) {
	dir := t.TempDir()
	nosend := func(message) {}
	a, b := &worker{dir: dir, send: nosend, beside: 2}, &worker{dir: dir, send: nosend, index: 1, beside: 2}
	specs := []conformance.SpecInfo{
		{Key: "k1", Class: conformance.Readonly},
		{Key: "k2", Class: conformance.Readonly, Group: "capa"},
		{Key: "k3", Class: conformance.Readonly, Group: "capa"},
		{Key: "k4", Class: conformance.Readonly, Group: "rich"},
		{Key: "k5", Class: conformance.Mutating},
		{Key: "k6", Class: conformance.Readonly, Flags: []conformance.Flag{conformance.Slow}},
		{Key: "k7", Class: conformance.Readonly, Group: "capa"},
		{Key: "k9", Class: conformance.Readonly, Flags: []conformance.Flag{conformance.NoLogin}},
		// Disruptive but not allowed here: gate skips it at once, so it
		// needs no wait for the lead.
		{Key: "k10", Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.NoLogin}},
		{Key: "k11", Class: conformance.Disruptive},
	}
	owner := map[string]*worker{}
	// b starts at the third spec, as a worker that came up later would.
	for i := range specs {
		for _, w := range []*worker{a, b} {
			s := specs[i]
			if w == b {
				s = specs[(i+2)%len(specs)]
			}
			if w.Here(s) {
				if o, ok := owner[s.Key]; ok && o != w {
					t.Fatalf("%s claimed by both workers", s.Key)
				}
				owner[s.Key] = w
			}
		}
	}
	for _, k := range []string{"k5", "k6", "k11"} {
		if owner[k] != nil {
			t.Errorf("%s is not concurrent but a worker took it", k)
		}
	}
	for _, k := range []string{"k1", "k2", "k3", "k4", "k7", "k9", "k10"} {
		if owner[k] == nil {
			t.Errorf("%s went to no worker", k)
		}
	}
	if owner["k2"] != owner["k3"] || owner["k3"] != owner["k7"] {
		t.Error("the specs of one Reading went to different workers")
	}
	// A stopped worker takes nothing more, not even its own group.
	a.stopped.Store(true)
	if a.Here(conformance.SpecInfo{Key: "k8", Class: conformance.Readonly, Group: "capa"}) {
		t.Error("a stopped worker took a spec")
	}
}

// TestWorkersBesideTheLead: the failed logins of a disruptive NoLogin spec
// wait until the lead runs its own specs (no readonly spec logs in any
// more); from then on only the workers that fit beside the lead's
// sessions take specs.
func TestWorkersBesideTheLead(t *testing.T) {
	dir := t.TempDir()
	var got []string
	lanes := 0
	send := func(m message) {
		if m.Start != nil {
			got = append(got, m.Start.Key)
		}
		if m.Lane {
			lanes++
		}
	}
	allow := harness.Permissions{Disruptive: true}
	soon := time.Now().Add(300 * time.Millisecond)
	first := &worker{dir: dir, send: send, beside: 1, allow: allow, deadline: soon}
	last := &worker{dir: dir, send: send, index: 1, beside: 1, allow: allow, deadline: soon}
	failing := conformance.SpecInfo{Key: "fail", Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.NoLogin}}

	begun := time.Now()
	if !first.Here(failing) {
		t.Fatal("a worker beside the lead did not take a NoLogin spec")
	}
	if waited := time.Since(begun); waited < 250*time.Millisecond {
		t.Errorf("took a spec with failed logins after %v, before the lead started its own specs", waited)
	}

	if err := os.WriteFile(filepath.Join(dir, laneFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	first.deadline, last.deadline = time.Now().Add(time.Minute), time.Now().Add(time.Minute)
	begun = time.Now()
	if !first.Here(conformance.SpecInfo{Key: "fail2", Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.NoLogin}}) {
		t.Error("a worker beside the lead did not take a NoLogin spec once the lead ran its own")
	}
	if waited := time.Since(begun); waited > 200*time.Millisecond {
		t.Errorf("waited %v once the lead ran its own specs", waited)
	}
	if last.Here(conformance.SpecInfo{Key: "ro", Class: conformance.Readonly, Flags: []conformance.Flag{conformance.NoLogin}}) {
		t.Error("a worker past the ones that fit beside the lead took a spec")
	}
	if !last.stopped.Load() {
		t.Error("a worker past the ones that fit beside the lead did not stop")
	}
	if want := []string{"fail", "fail2"}; !slices.Equal(got, want) {
		t.Errorf("started %v, want %v", got, want)
	}
	// Each worker says once that it saw the lane (and let its kept
	// session go).
	first.Here(conformance.SpecInfo{Key: "fail3", Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.NoLogin}})
	if lanes != 2 {
		t.Errorf("%d lane messages, want one from each worker", lanes)
	}
}

// TestLeadAwaitsKeptSessions: the lead starts its own specs only once no
// worker keeps a session between its specs, so the run stays within
// --max-connections.
func TestLeadAwaitsKeptSessions(t *testing.T) {
	l := &lead{workers: 2, dir: t.TempDir(), deadline: time.Now().Add(time.Minute)}
	l.update(func() { l.pool, l.live, l.holds[1] = true, 2, true })
	started := make(chan struct{})
	go func() { l.startLane(); close(started) }()
	select {
	case <-started:
		t.Fatal("the lead started its specs while a worker kept a session")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := os.Stat(filepath.Join(l.dir, laneFile)); err != nil {
		t.Errorf("no lane file while waiting: %v", err)
	}
	l.update(func() { l.holds[1] = false }) // the worker's lane message
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the lead did not start once the worker let its session go")
	}
}

// TestLeadRoom: the lead opens a connection ahead of its next dial only
// once its own specs run, within the two connections the workers beside
// leave it, within every connection of the run for a spec that runs
// alone, and never for a wait on a server timer.
func TestLeadRoom(t *testing.T) {
	tg, err := harness.Open(t.Context(), harness.Config{Profile: "exchange2010"})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	l := &lead{workers: 4, dir: t.TempDir(), deadline: time.Now().Add(time.Minute), t: tg, cfg: harness.Config{Allow: harness.Permissions{Reversible: true, Mutating: true, Disruptive: true, Slow: true}}}
	l.update(func() { l.pool = true })
	if got := l.room(); got != 0 {
		t.Errorf("room %d before the lead's own specs, want 0", got)
	}
	for _, tc := range []struct {
		name string
		s    conformance.SpecInfo
		want int
	}{
		{"reversible", conformance.SpecInfo{Key: "r", Class: conformance.Reversible}, 2},
		{"hostile input", conformance.SpecInfo{Key: "h", Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.Robustness}}, 4},
		{"a server timer", conformance.SpecInfo{Key: "s", Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.Slow}}, 0},
		{"mutating", conformance.SpecInfo{Key: "m", Class: conformance.Mutating}, 2},
	} {
		if !l.Here(tc.s) {
			t.Fatalf("%s: the lead does not run its own spec", tc.name)
		}
		if got := l.room(); got != tc.want {
			t.Errorf("%s: room %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestLeadCalm: the lead lets the workers beside it take the LoginOnly
// specs once it reaches a spec that marks or removes mail after the
// disruptive ones, one that runs alone (the workers end first), or the
// workers' own specs; not at the marked Reading, a disruptive spec, or a
// spec the run does not allow; and after a worker was refused a session,
// not before its own specs are done.
func TestLeadCalm(t *testing.T) {
	loginOnly := []conformance.Flag{conformance.LoginOnly}
	for _, tc := range []struct {
		name string
		s    conformance.SpecInfo
		runs bool
		want bool
	}{
		{"the marked Reading", conformance.SpecInfo{Class: conformance.Reversible, Group: "marked"}, true, false},
		{"a disruptive spec", conformance.SpecInfo{Class: conformance.Disruptive}, true, false},
		{"a reversible spec", conformance.SpecInfo{Class: conformance.Reversible}, true, true},
		{"a reversible spec the run does not allow", conformance.SpecInfo{Class: conformance.Reversible}, false, false},
		{"a mutating spec", conformance.SpecInfo{Class: conformance.Mutating}, true, true},
		{"a wait on a server timer", conformance.SpecInfo{Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.Slow}}, true, true},
		{"hostile input", conformance.SpecInfo{Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.Robustness}}, true, true},
		{"a NoLogin spec", conformance.SpecInfo{Class: conformance.Readonly, Flags: []conformance.Flag{conformance.NoLogin}}, true, true},
		{"a LoginOnly spec", conformance.SpecInfo{Class: conformance.Readonly, Flags: loginOnly}, true, true},
		{"a readonly spec", conformance.SpecInfo{Class: conformance.Readonly}, true, false},
	} {
		l := &lead{}
		if got := l.calmAt(tc.s, tc.runs); got != tc.want {
			t.Errorf("%s: calm %v, want %v", tc.name, got, tc.want)
		}
	}
	// After a worker was refused a session, only the end of this
	// process's own specs, or of the workers, lets them run.
	refused := &lead{refusals: []string{"-ERR [IN-USE]"}}
	for _, tc := range []struct {
		s    conformance.SpecInfo
		want bool
	}{
		{conformance.SpecInfo{Class: conformance.Reversible}, false},
		{conformance.SpecInfo{Class: conformance.Mutating}, false},
		{conformance.SpecInfo{Class: conformance.Disruptive, Flags: []conformance.Flag{conformance.Robustness}}, true},
		{conformance.SpecInfo{Class: conformance.Readonly, Flags: loginOnly}, true},
	} {
		if got := refused.calmAt(tc.s, true); got != tc.want {
			t.Errorf("after a refusal, %s %v: calm %v, want %v", tc.s.Class, tc.s.Flags, got, tc.want)
		}
	}
	l := &lead{dir: t.TempDir()}
	l.signalCalm()
	w := &worker{dir: l.dir}
	if !w.calm() {
		t.Error("no calm file after signalCalm")
	}
}

// TestWorkersAwaitCalm: a LoginOnly spec waits, on a worker beside the
// lead, until the lead says no disruptive spec is left; a worker past
// the ones beside stops once the lead runs its own specs; in a readonly
// run, where the lead runs none, it goes at once.
func TestWorkersAwaitCalm(t *testing.T) {
	dir := t.TempDir()
	var got []string
	send := func(m message) {
		if m.Start != nil {
			got = append(got, m.Start.Key)
		}
	}
	allow := harness.Permissions{Reversible: true, Disruptive: true}
	later := time.Now().Add(time.Minute)
	beside := &worker{dir: dir, send: send, beside: 1, allow: allow, deadline: later}
	past := &worker{dir: dir, send: send, index: 1, beside: 1, allow: allow, deadline: later}
	lo := func(key string) conformance.SpecInfo {
		return conformance.SpecInfo{Key: key, Class: conformance.Readonly, Flags: []conformance.Flag{conformance.LoginOnly}}
	}
	if err := os.WriteFile(filepath.Join(dir, laneFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if past.Here(lo("past")) || !past.stopped.Load() {
		t.Error("a worker past the ones beside the lead did not stop at a LoginOnly spec")
	}
	took := make(chan bool)
	go func() { took <- beside.Here(lo("lo")) }()
	select {
	case <-took:
		t.Fatal("a LoginOnly spec ran beside the lead before it said calm")
	case <-time.After(150 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(dir, calmFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-took:
		if !ok {
			t.Error("the worker beside the lead did not take the LoginOnly spec once calm")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the LoginOnly spec still waits after calm")
	}

	ro := &worker{dir: t.TempDir(), send: send, beside: 1, deadline: later}
	begun := time.Now()
	if !ro.Here(lo("ro")) {
		t.Error("a readonly run's worker did not take a LoginOnly spec")
	}
	if waited := time.Since(begun); waited > 100*time.Millisecond {
		t.Errorf("a readonly run's LoginOnly spec waited %v", waited)
	}
	if want := []string{"lo", "ro"}; !slices.Equal(got, want) {
		t.Errorf("started %v, want %v", got, want)
	}
}

// TestLeadMakesRoom: before its own specs the lead runs a spec a worker
// gave back only once the workers' connections leave room for it; the
// workers take no spec meanwhile, and go on once it ended.
func TestLeadMakesRoom(t *testing.T) {
	l := &lead{workers: 4, dir: t.TempDir(), deadline: time.Now().Add(time.Minute)}
	given := conformance.SpecInfo{Key: "given", Class: conformance.Readonly}
	l.update(func() {
		l.pool, l.live = true, 4
		l.running[0], l.running[1], l.running[2] = "a", "b", "c"
		l.givenKeys["given"] = true
	})
	ran := make(chan bool)
	go func() { ran <- l.Here(given) }()
	select {
	case <-ran:
		t.Fatal("the lead ran a given-back spec while three workers held a connection each")
	case <-time.After(100 * time.Millisecond):
	}
	w := &worker{dir: l.dir, send: func(message) {}, beside: 2, deadline: time.Now().Add(150 * time.Millisecond)}
	begun := time.Now()
	w.Here(conformance.SpecInfo{Key: "next", Class: conformance.Readonly})
	if waited := time.Since(begun); waited < 100*time.Millisecond {
		t.Errorf("a worker took a spec after %v while the lead held the workers", waited)
	}
	l.update(func() { delete(l.running, 2) })
	select {
	case here := <-ran:
		if !here {
			t.Error("the lead did not run the spec given back")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lead still waits with two connections free")
	}
	l.Ended("given", "")
	// After a refusal, the spec waits until the workers hold nothing.
	l.update(func() { l.refusals = []string{"-ERR [SYS/TEMP]"} })
	go func() { ran <- l.Here(given) }()
	select {
	case <-ran:
		t.Fatal("after a refusal the lead ran a given-back spec while workers held connections")
	case <-time.After(100 * time.Millisecond):
	}
	l.update(func() { clear(l.running) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the lead still waits with no worker holding a connection")
	}
	l.Ended("given", "")
	w.deadline = time.Now().Add(time.Minute)
	begun = time.Now()
	if !w.Here(conformance.SpecInfo{Key: "after", Class: conformance.Readonly}) {
		t.Error("a worker took no spec once the given-back spec ended")
	}
	if waited := time.Since(begun); waited > 100*time.Millisecond {
		t.Errorf("a worker waited %v after the given-back spec ended", waited)
	}
}
