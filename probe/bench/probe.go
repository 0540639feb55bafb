package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pop3conformance/pop3conformance/internal/netsim"
)

// NetOneWay is the simulated network's delay each way in the probe rows:
// a 50 ms round trip, a server in another region.
const NetOneWay = 25 * time.Millisecond

// ProbeRun is one probe audit as the benchmark measured it.
type ProbeRun struct {
	Wall        time.Duration
	Connections int
	RoundTrips  int
	Statements  int
}

// probeReport is the part of the probe's report.json the benchmark reads.
type probeReport struct {
	Commands struct {
		Connections int `json:"connections"`
		RoundTrips  int `json:"round_trips"`
	} `json:"commands"`
	Statements []json.RawMessage `json:"statements"`
}

// probeMode is one row pair: the probe's permissions.
type probeMode struct {
	name string
	args []string
}

// The default runs share their readonly specs among --max-connections
// (4) sessions; the one-session row shows what that sharing buys.
var probeModes = []probeMode{
	{"readonly", nil},
	{"readonly, one session", []string{"--max-connections", "1"}},
	{"mutating+disruptive", []string{"--allow-mutating", "--allow-disruptive"}},
}

// RunProbe audits a fresh reference-server process (exchange2010, the
// embedded fixtures, clear password storage) with the probe binary as a
// remote host, through a latency proxy of oneWay each way (none when 0).
// Every run gets its own server, so a mutating run never sees another's
// changes.
func RunProbe(ctx context.Context, probeBin, refBin, work string, oneWay time.Duration, args []string, logw io.Writer) (ProbeRun, error) {
	dir, err := os.MkdirTemp(work, "probe-")
	if err != nil {
		return ProbeRun{}, err
	}
	defer os.RemoveAll(dir)
	ref, err := StartReference(refBin, filepath.Join(dir, "data"), logw)
	if err != nil {
		return ProbeRun{}, err
	}
	defer ref.Stop()
	addr := ref.Addr
	if oneWay > 0 {
		px, err := netsim.Start(ref.Addr, netsim.Options{OneWay: oneWay})
		if err != nil {
			return ProbeRun{}, err
		}
		defer px.Close()
		addr = px.Addr()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ProbeRun{}, err
	}
	out := filepath.Join(dir, "report")
	cmd := exec.CommandContext(ctx, probeBin, append([]string{"--host", host, "--port", port,
		"--user", "alice", "--password-env", "BENCH_PW", "--user2", "bob", "--password2-env", "BENCH_PW2",
		"--mailbox-fixture", "alice", "--profile", "exchange2010", "--insecure-skip-verify",
		"--format", "json", "--quiet", "--out", out, "--timeout", "15m"}, args...)...)
	cmd.Env = append(os.Environ(), "BENCH_PW=wonderland", "BENCH_PW2=two words")
	cmd.Stdout, cmd.Stderr = logw, logw
	start := time.Now()
	err = cmd.Run()
	run := ProbeRun{Wall: time.Since(start)}
	if code := cmd.ProcessState.ExitCode(); err != nil && code != 1 {
		return run, fmt.Errorf("probe %v: %w", args, err)
	}
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		return run, err
	}
	var rep probeReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return run, fmt.Errorf("probe report: %w", err)
	}
	run.Connections, run.RoundTrips, run.Statements = rep.Commands.Connections, rep.Commands.RoundTrips, len(rep.Statements)
	return run, nil
}

// probeRows measures each probe mode on loopback and, unless quick,
// across NetOneWay, and adds the rows: wall times, their ratio,
// connections and round trips. Quick mode leaves out the network runs
// and estimates them from the counts instead.
func probeRows(ctx context.Context, cfg Config, res *results, logf func(string, ...any)) {
	if cfg.ProbeBin == "" {
		return
	}
	rtt := 2 * NetOneWay
	for _, m := range probeModes {
		loop, err := RunProbe(ctx, cfg.ProbeBin, cfg.RefBin, cfg.Work, 0, m.args, cfg.ServerLog)
		if err != nil {
			logf("  probe %s on loopback: %v", m.name, err)
			continue
		}
		logf("  probe %-20s loopback  %6.1f s, %d connections, %d round trips, %d statements",
			m.name, loop.Wall.Seconds(), loop.Connections, loop.RoundTrips, loop.Statements)
		res.add("probe "+m.name+", loopback", "s", "lower", "reference", loop.Wall.Seconds())
		res.add("probe "+m.name+", connections", "count", "lower", "reference", float64(loop.Connections))
		res.add("probe "+m.name+", round trips (all sessions)", "count", "lower", "reference", float64(loop.RoundTrips))
		netName := fmt.Sprintf("probe %s, %v round trip", m.name, rtt)
		if cfg.Quick {
			// Each connection waits out the TCP handshake and the
			// greeting (two round trips), each counted round trip one.
			est := loop.Wall + rtt*time.Duration(loop.RoundTrips+2*loop.Connections)
			res.add(netName+" (estimated from the counts)", "s", "lower", "reference", est.Seconds())
			continue
		}
		far, err := RunProbe(ctx, cfg.ProbeBin, cfg.RefBin, cfg.Work, NetOneWay, m.args, cfg.ServerLog)
		if err != nil {
			logf("  probe %s across %v: %v", m.name, rtt, err)
			continue
		}
		logf("  probe %-20s %v RTT %6.1f s, %d connections, %d round trips",
			m.name, rtt, far.Wall.Seconds(), far.Connections, far.RoundTrips)
		res.add(netName, "s", "lower", "reference", far.Wall.Seconds())
		res.add(netName+" / loopback", "×", "lower", "reference", far.Wall.Seconds()/loop.Wall.Seconds())
		if far.Connections != loop.Connections || far.RoundTrips != loop.RoundTrips {
			res.note(netName, fmt.Sprintf("the network run counted %d connections and %d round trips, loopback %d and %d",
				far.Connections, far.RoundTrips, loop.Connections, loop.RoundTrips))
		}
	}
}
