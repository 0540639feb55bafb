package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is one benchmark run.
type Config struct {
	Quick       bool
	Rounds      int
	Repo        string // repository root
	RefBin      string // reference-server binary
	Work        string // scratch directory (tmpfs recommended); removed at the end
	Out         string // reports/bench
	SkipDovecot bool
	SkipSuite   bool
	// ProbeBin is the probe binary for the probe rows (none when "");
	// ProbeOnly measures those rows alone.
	ProbeBin     string
	ProbeOnly    bool
	Log          io.Writer // progress
	ServerLog    io.Writer // servers' stderr
	SessionTime  time.Duration
	IdleSessions int
	BigCount     int
}

// Metric is one line of the results table.
type Metric struct {
	Metric    string    `json:"metric"`
	Unit      string    `json:"unit"`
	Reference *float64  `json:"reference"`
	Dovecot   *float64  `json:"dovecot"`
	Ratio     *float64  `json:"ratio"`
	Ceiling   *float64  `json:"ceiling,omitempty"`
	CeilName  string    `json:"ceiling_name,omitempty"`
	Better    string    `json:"better"`
	RefSpread []float64 `json:"reference_samples,omitempty"`
	DovSpread []float64 `json:"dovecot_samples,omitempty"`
	CeilSamp  []float64 `json:"ceiling_samples,omitempty"`
	Target    string    `json:"target,omitempty"`
	Met       *bool     `json:"met,omitempty"`
	Note      string    `json:"note,omitempty"`
}

type series struct {
	unit, better, ceilName, note string
	ref, dov, ceil               []float64
}

type results struct {
	mu    sync.Mutex
	order []string
	m     map[string]*series
}

func (r *results) add(metric, unit, better, who string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]*series{}
	}
	s, ok := r.m[metric]
	if !ok {
		s = &series{unit: unit, better: better}
		r.m[metric] = s
		r.order = append(r.order, metric)
	}
	switch who {
	case "reference":
		s.ref = append(s.ref, v)
	case "dovecot":
		s.dov = append(s.dov, v)
	default:
		s.ceil = append(s.ceil, v)
		s.ceilName = who
	}
}

func (r *results) note(metric, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.m[metric]; ok {
		s.note = text
	}
}

func median(v []float64) *float64 {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &m
}

// Run runs the benchmark and writes the reports.
func Run(ctx context.Context, cfg Config) error {
	logf := func(format string, a ...any) { fmt.Fprintf(cfg.Log, "pop3bench: "+format+"\n", a...) }
	raiseNofile(logf)
	started := time.Now()
	if err := os.MkdirAll(cfg.Work, 0o755); err != nil {
		return err
	}
	os.Chmod(cfg.Work, 0o755) // Dovecot's users must reach the work directory
	defer os.RemoveAll(cfg.Work)

	var res results
	env := map[string]string{}
	if cfg.ProbeOnly {
		logf("probe against the reference server, loopback and across %v each way", NetOneWay)
		probeRows(ctx, cfg, &res, logf)
		return write(cfg, finishEnv(cfg, env, started), &res)
	}
	logf("building content (%d-message mailbox)", cfg.BigCount)
	data := NewData(128, cfg.BigCount)
	accounts := data.SessionAccounts()

	// --- servers --------------------------------------------------------
	refDir := filepath.Join(cfg.Work, "reference")
	t0 := time.Now()
	if err := SeedReference(refDir, data); err != nil {
		return fmt.Errorf("seed reference: %w", err)
	}
	logf("reference store seeded in %v", time.Since(t0).Round(time.Millisecond))
	ref, err := StartReference(cfg.RefBin, refDir, cfg.ServerLog)
	if err != nil {
		return err
	}
	defer func() { ref.Stop() }()
	logf("reference server pid %d on %s (started %v after seeding)", ref.Pid, ref.Addr, time.Since(t0).Round(time.Millisecond))

	var dov *Proc
	if !cfg.SkipDovecot {
		t0 = time.Now()
		dov, err = StartDovecot(cfg.Repo, filepath.Join(cfg.Work, "dovecot"), data, cfg.ServerLog)
		if err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		defer dov.Stop()
		logf("dovecot master pid %d on %s (%v)", dov.Pid, dov.Addr, time.Since(t0).Round(time.Millisecond))
		// First login on the 100k Maildir builds Dovecot's index: timed
		// on its own, then every measured login is a warm one.
		t0 = time.Now()
		if _, err := Listing(dov.Addr, BigAccount, 5*time.Minute); err != nil {
			return fmt.Errorf("dovecot first login: %w", err)
		}
		res.add(fmt.Sprintf("first session on %d messages (login, STAT, LIST, UIDL; Dovecot builds its index)", cfg.BigCount), "ms", "lower", "dovecot", ms(time.Since(t0)))
		logf("dovecot indexed the big mailbox in %v", time.Since(t0).Round(time.Millisecond))
	}
	canned, err := StartSelf("canned")
	if err != nil {
		return err
	}
	defer canned.Stop()

	type target struct {
		name string
		p    *Proc
	}
	targets := []target{{"reference", ref}}
	if dov != nil {
		targets = append(targets, target{"dovecot", dov})
	}

	// --- rounds ----------------------------------------------------------
	for round := 0; round < cfg.Rounds; round++ {
		order := slices.Clone(targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		logf("round %d/%d", round+1, cfg.Rounds)
		for _, clients := range []int{1, 16, 128} {
			metric := fmt.Sprintf("sessions/s, %d clients", clients)
			for _, t := range append(order, target{"canned-reply ceiling", canned}) {
				r := Sessions(t.p.Addr, accounts, clients, cfg.SessionTime, 1_000_000)
				logf("  %-22s %-22s %8.0f sessions/s (%d errors%s)", metric, t.name, r.Rate(), r.Errors, errText(r.FirstErr))
				res.add(metric, "sessions/s", "higher", t.name, r.Rate())
				if r.Errors > 0 && t.name != "canned-reply ceiling" {
					res.note(metric, fmt.Sprintf("%s: %d failed sessions in a round (%v)", t.name, r.Errors, r.FirstErr))
				}
			}
		}
		for _, m := range []struct {
			name string
			msg  int
			reps int
			size int
		}{{"RETR 300 KB", 1, 10, len(data.Mid)}, {"RETR 20 MB", 2, 3, len(data.Large)}} {
			metric := m.name + " throughput"
			for _, t := range order {
				var best []float64
				var peak int64
				for k := 0; k < m.reps; k++ {
					base := memOf(t.name, t.p.Pid)
					stopPoll := pollPeak(t.name, t.p.Pid, &peak, base)
					v, _, err := Retr(t.p.Addr, RetrAccount, m.msg, time.Minute)
					stopPoll()
					if err != nil {
						logf("  %s %s: %v", metric, t.name, err)
						continue
					}
					best = append(best, v)
				}
				if v := median(best); v != nil {
					res.add(metric, "MB/s", "higher", t.name, *v)
					logf("  %-22s %-22s %8.1f MB/s", metric, t.name, *v)
				}
				if m.msg == 2 {
					res.add("server memory growth while serving RETR 20 MB", "MiB", "lower", t.name, float64(peak)/(1<<20))
				}
			}
			var raws []float64
			for k := 0; k < m.reps; k++ {
				if v, err := RawCopy(int64(m.size)); err == nil {
					raws = append(raws, v)
				}
			}
			if v := median(raws); v != nil {
				res.add(metric, "MB/s", "higher", "raw loopback TCP copy", *v)
				logf("  %-22s %-22s %8.1f MB/s", metric, "raw loopback", *v)
			}
		}
		for _, t := range order {
			var lrs []ListingResult
			for k := 0; k < 3; k++ {
				lr, err := Listing(t.p.Addr, BigAccount, time.Minute)
				if err != nil {
					logf("  listing %s: %v", t.name, err)
					break
				}
				lrs = append(lrs, lr)
			}
			if len(lrs) == 0 {
				continue
			}
			pick := func(f func(ListingResult) time.Duration) float64 {
				v := make([]float64, len(lrs))
				for i, lr := range lrs {
					v[i] = ms(f(lr))
				}
				return *median(v)
			}
			n := cfg.BigCount
			res.add(fmt.Sprintf("login (PASS to +OK) on %d messages", n), "ms", "lower", t.name, pick(func(l ListingResult) time.Duration { return l.Login }))
			res.add(fmt.Sprintf("STAT on %d messages", n), "ms", "lower", t.name, pick(func(l ListingResult) time.Duration { return l.Stat }))
			res.add(fmt.Sprintf("LIST on %d messages", n), "ms", "lower", t.name, pick(func(l ListingResult) time.Duration { return l.List }))
			res.add(fmt.Sprintf("UIDL on %d messages", n), "ms", "lower", t.name, pick(func(l ListingResult) time.Duration { return l.UIDL }))
			logf("  big mailbox %-10s login %.1f ms, STAT %.1f ms, LIST %.1f ms, UIDL %.1f ms", t.name,
				ms(lrs[0].Login), ms(lrs[0].Stat), ms(lrs[0].List), ms(lrs[0].UIDL))
		}
		for i, t := range order {
			if t.name == "reference" {
				// A fresh process, as Dovecot's sessions get fresh
				// processes: heap freed by the earlier workloads would
				// otherwise hide the sessions' growth.
				ref.Stop()
				if ref, err = StartReference(cfg.RefBin, refDir, cfg.ServerLog); err != nil {
					return err
				}
				t.p = ref
				order[i].p = ref
				for j := range targets {
					if targets[j].name == "reference" {
						targets[j].p = ref
					}
				}
			}
			time.Sleep(500 * time.Millisecond) // let exited sessions settle
			before := memOf(t.name, t.p.Pid)
			deadline := time.Now().Add(3 * time.Minute)
			closeAll, opened, err := IdleSessions(t.p.Addr, accounts, cfg.IdleSessions, 64, deadline)
			time.Sleep(time.Second)
			after := memOf(t.name, t.p.Pid)
			closeAll()
			metric := fmt.Sprintf("memory per idle authenticated session (%d sessions)", cfg.IdleSessions)
			if opened < cfg.IdleSessions {
				logf("  idle %s: only %d of %d sessions opened: %v", t.name, opened, cfg.IdleSessions, err)
				if t.name == "dovecot" {
					if b, err := os.ReadFile(filepath.Join(cfg.Work, "dovecot", "dovecot.log")); err == nil {
						var tb tailBuffer
						for _, l := range strings.Split(string(b), "\n") {
							if strings.Contains(l, "Error") || strings.Contains(l, "Fatal") || strings.Contains(l, "Warning") {
								tb.Write([]byte(l + "\n"))
							}
						}
						logf("  last lines of dovecot.log:\n%s", tb.tail(8))
					}
				}
				res.note(metric, fmt.Sprintf("%s: only %d sessions opened (%v)", t.name, opened, err))
			}
			if opened > 0 {
				per := float64(after-before) / float64(opened)
				res.add(metric, "bytes", "lower", t.name, per)
				logf("  idle %-10s %d sessions: %.1f MiB -> %.1f MiB, %.0f bytes each", t.name, opened, float64(before)/(1<<20), float64(after)/(1<<20), per)
			}
			time.Sleep(2 * time.Second) // Dovecot reaps its processes
		}
		if !cfg.SkipSuite {
			ginkgo := []string{"run", "github.com/onsi/ginkgo/v2/ginkgo", "--label-filter=!slow"}
			if round == 0 {
				// warm the build cache so that the timed runs are runs
				RunTimed(ctx, cfg.Repo, io.Discard, "go", "test", "-count=1", "-run=^$", "./suites/conformance")
			}
			for _, v := range []struct {
				name string
				args []string
			}{{"serial", nil}, {"ginkgo -p", []string{"-p"}}} {
				args := append(slices.Clone(ginkgo), v.args...)
				args = append(args, "./suites/conformance")
				var out tailBuffer
				d, err := RunTimed(ctx, cfg.Repo, io.MultiWriter(cfg.ServerLog, &out), "go", args...)
				if err != nil {
					logf("  suite %s failed after %v: %v; its last output:\n%s", v.name, d, err, out.tail(30))
					res.note("full suite (!slow) wall time, "+v.name, fmt.Sprintf("failed: %v", err))
				}
				res.add("full suite (!slow) wall time, "+v.name, "s", "lower", "reference", d.Seconds())
				logf("  suite %-10s %.1f s", v.name, d.Seconds())
			}
		}
	}
	logf("probe against the reference server, loopback and across %v each way", NetOneWay)
	probeRows(ctx, cfg, &res, logf)
	return write(cfg, finishEnv(cfg, env, started), &res)
}

// finishEnv fills the machine description of the report.
func finishEnv(cfg Config, env map[string]string, started time.Time) map[string]string {
	env["cpu"] = cpuModel()
	env["cores"] = fmt.Sprint(runtime.NumCPU())
	env["date"] = time.Now().UTC().Format(time.RFC3339)
	env["go"] = runtime.Version()
	env["kernel"] = kernel()
	env["dovecot"] = dovecotVersion()
	env["mode"] = map[bool]string{true: "QUICK", false: "full"}[cfg.Quick]
	env["rounds"] = fmt.Sprint(cfg.Rounds)
	env["duration"] = time.Since(started).Round(time.Second).String()
	return env
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ", first: " + err.Error()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// memOf is the server's resident memory: VmRSS of the one reference
// process; RssAnon summed over Dovecot's process tree (VmRSS would count
// the shared pages of its thousands of processes again and again; RssAnon
// leaves out their private file pages and page tables, so it is a lower
// bound).
func memOf(who string, pid int) int64 {
	rss, anon, _ := TreeMemory(pid)
	if who == "dovecot" {
		return anon
	}
	return rss
}

// pollPeak samples memOf every 20 ms until stopped and records the largest
// growth over base in *peak.
func pollPeak(who string, pid int, peak *int64, base int64) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for i := 0; i < 3000; i++ {
			select {
			case <-done:
				return
			case <-t.C:
				if g := memOf(who, pid) - base; g > *peak {
					*peak = g
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func raiseNofile(logf func(string, ...any)) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	lim.Cur = lim.Max
	// explicit, so that the servers started from here inherit it
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf("raise open files limit: %v", err)
	}
	logf("open files limit %d", lim.Cur)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func dovecotVersion() string {
	out, err := execOutput("dovecot", "--version")
	if err != nil {
		return "not run"
	}
	return strings.TrimSpace(out)
}

// targets of issue 6, checked on the medians.
func judge(metric string, s *series, bigCount, idle int) (string, *bool) {
	ref, dov, ceil := median(s.ref), median(s.dov), median(s.ceil)
	b := func(v bool) *bool { return &v }
	switch {
	case metric == "sessions/s, 16 clients" || metric == "sessions/s, 128 clients":
		t := "≥ 20× Dovecot and ≥ ½ canned ceiling"
		if ref == nil || ceil == nil {
			return t, nil
		}
		ok := *ref >= *ceil/2
		if dov != nil {
			ok = ok && *ref >= 20**dov
		}
		return t, b(ok)
	case metric == "RETR 20 MB throughput":
		t := "≥ Dovecot and ≥ ½ raw loopback"
		if ref == nil || ceil == nil {
			return t, nil
		}
		ok := *ref >= *ceil/2
		if dov != nil {
			ok = ok && *ref >= *dov
		}
		return t, b(ok)
	case strings.HasPrefix(metric, "LIST on") || strings.HasPrefix(metric, "UIDL on"):
		return below(ref, 100, "< 100 ms")
	case strings.HasPrefix(metric, "memory per idle"):
		return below(ref, 32768, "< 32 KiB")
	case strings.HasSuffix(metric, "wall time, serial"):
		return below(ref, 20, "< 20 s")
	case strings.HasSuffix(metric, "wall time, ginkgo -p"):
		return below(ref, 12, "< 12 s")
	case metric == "probe readonly, loopback":
		return below(ref, 5, "< 5 s") // issue 16
	case metric == "probe readonly, 50ms round trip":
		return below(ref, 20, "< 20 s")
	case metric == "probe mutating+disruptive, 50ms round trip":
		return below(ref, 30, "< 30 s")
	}
	return "", nil
}

// below judges an upper bound: text names it, met is nil without a value.
func below(v *float64, limit float64, text string) (string, *bool) {
	if v == nil {
		return text, nil
	}
	ok := *v < limit
	return text, &ok
}

func write(cfg Config, env map[string]string, r *results) error {
	var items []Metric
	for _, name := range r.order {
		s := r.m[name]
		m := Metric{Metric: name, Unit: s.unit, Better: s.better, Reference: median(s.ref), Dovecot: median(s.dov),
			Ceiling: median(s.ceil), CeilName: s.ceilName, RefSpread: s.ref, DovSpread: s.dov, CeilSamp: s.ceil, Note: s.note}
		if m.Reference != nil && m.Dovecot != nil && *m.Dovecot != 0 {
			q := *m.Reference / *m.Dovecot
			m.Ratio = &q
		}
		m.Target, m.Met = judge(name, s, cfg.BigCount, cfg.IdleSessions)
		items = append(items, m)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	doc := map[string]any{"machine": env, "dovecot_overrides": DovecotOverrides, "results": items,
		"notes": notes()}
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# POP3 benchmark: reference server vs Dovecot\n\n")
	fmt.Fprintf(&md, "%s, %s mode, %s round(s), took %s. CPU: %s, %s cores; Linux %s; %s; Dovecot %s.\n\n",
		env["date"], env["mode"], env["rounds"], env["duration"], env["cpu"], env["cores"], env["kernel"], env["go"], env["dovecot"])
	fmt.Fprintf(&md, "Median over rounds; spread is min–max. Ratio is reference / Dovecot.\n\n")
	fmt.Fprintf(&md, "| metric | unit | reference | Dovecot | ratio | ceiling | target | met |\n|---|---|---|---|---|---|---|---|\n")
	for _, m := range items {
		ceil := ""
		if m.Ceiling != nil {
			ceil = fmt.Sprintf("%s (%s)", num(*m.Ceiling), m.CeilName)
		}
		met := ""
		if m.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*m.Met]
		}
		ratio := "–"
		if m.Ratio != nil {
			ratio = fmt.Sprintf("%.3g", *m.Ratio)
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", m.Metric, m.Unit,
			cell(m.Reference, m.RefSpread), cell(m.Dovecot, m.DovSpread), ratio, ceil, m.Target, met)
	}
	fmt.Fprintf(&md, "\n")
	for _, m := range items {
		if m.Note != "" {
			fmt.Fprintf(&md, "- %s: %s\n", m.Metric, m.Note)
		}
	}
	fmt.Fprintf(&md, "\nDovecot settings added to probe/peers/dovecot/start.sh's configuration for the load:\n\n```\n%s\n```\n\n", strings.Join(DovecotOverrides, "\n"))
	for _, n := range notes() {
		fmt.Fprintf(&md, "- %s\n", n)
	}
	return os.WriteFile(filepath.Join(cfg.Out, "latest.md"), []byte(md.String()), 0o644)
}

func notes() []string {
	return []string{
		"Everything runs on 127.0.0.1 on the same cores: client, servers and ceilings share the CPU.",
		"Both servers check clear passwords (reference --password-storage clear, Dovecot {PLAIN}); both stores live on the same tmpfs.",
		"Sessions: connect, USER/PASS, STAT, UIDL, RETR of one 4 KB byte-stuffed message, QUIT; client i logs in as bs(i mod 128).",
		"RETR MB/s counts the stuffed body octets received from RETR to the final dot; the ceiling is one in-memory writer to one reader over loopback TCP.",
		"Memory: reference = VmRSS of its one process (restarted before the measurement); Dovecot = RssAnon summed over its process tree (one pop3 process per session; a lower bound: Pss needs CAP_SYS_PTRACE here); growth from before to while the sessions are open.",
		"Probe: the probe binary audits a fresh reference-server process (exchange2010, embedded fixtures, clear password storage) as a remote host, with observe; the network rows put internal/netsim's proxy in front (25 ms each way, and a TCP handshake's 1.5 round trips before the server accepts). Connections and round trips are the report's own counts (commands.connections, commands.round_trips); QUICK estimates the network rows as loopback time + 50 ms × (round trips + 2 × connections).",
		"Suite: `go run github.com/onsi/ginkgo/v2/ginkgo --label-filter='!slow' ./suites/conformance` (serial and -p), in-process reference server, build cache warm.",
	}
}

func cell(v *float64, samples []float64) string {
	if v == nil {
		return "–"
	}
	if len(samples) < 2 {
		return num(*v)
	}
	lo, hi := slices.Min(samples), slices.Max(samples)
	return fmt.Sprintf("%s (%s–%s)", num(*v), num(lo), num(hi))
}

func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 64<<10 {
		t.b = t.b[len(t.b)-64<<10:]
	}
	return len(p), nil
}

func (t *tailBuffer) tail(lines int) string {
	l := strings.Split(strings.TrimRight(string(t.b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
