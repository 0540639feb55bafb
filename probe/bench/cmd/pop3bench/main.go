// Command pop3bench measures the reference server and Dovecot side by side
// (issue 6) and writes reports/bench/latest.{md,json}. Run it through
// probe/bench/run.sh (`make bench`, `make bench QUICK=1`), which builds the
// reference server first.
//
//	pop3bench [--quick] [--rounds N] --ref-bin bin/reference-server [--out reports/bench]
//	pop3bench canned   # internal: the canned-reply server, prints its address
//	pop3bench load --addr HOST:PORT --user U --pass P [--clients N] [--duration D]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "canned" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().String())
		body := bench.Message(4096, "small")
		stuffed := stuff(body)
		if err := bench.CannedServer(ln, stuffed); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "load" {
		os.Exit(load(os.Args[2:]))
	}
	fl := flag.NewFlagSet("pop3bench", flag.ExitOnError)
	quick := fl.Bool("quick", false, "one round, smaller counts (under 2 minutes)")
	rounds := fl.Int("rounds", 3, "rounds (full mode)")
	refBin := fl.String("ref-bin", "bin/reference-server", "reference-server binary")
	repo := fl.String("repo", ".", "repository root")
	out := fl.String("out", "reports/bench", "report directory")
	work := fl.String("work", "", "scratch directory (default: a new one under /dev/shm, else the temp dir)")
	noDovecot := fl.Bool("no-dovecot", false, "measure the reference server only")
	noSuite := fl.Bool("no-suite", false, "skip the suite wall-time measurement")
	probeBin := fl.String("probe-bin", "", "probe binary: adds the probe rows (loopback and a 50 ms round trip)")
	probeOnly := fl.Bool("probe-only", false, "measure the probe rows alone")
	idle := fl.Int("idle", 0, "idle sessions (default 5000; 1000 with --quick)")
	big := fl.Int("big", 100000, "messages in the big mailbox")
	sessTime := fl.Duration("session-time", 0, "duration of each sessions/s measurement (default 4s; 1.5s with --quick)")
	verbose := fl.Bool("v", false, "show the servers' and the suite's output")
	fl.Parse(os.Args[1:])

	cfg := bench.Config{Quick: *quick, Rounds: *rounds, RefBin: *refBin, Out: *out, SkipDovecot: *noDovecot,
		SkipSuite: *noSuite, ProbeOnly: *probeOnly, Log: os.Stderr, ServerLog: devnull(), IdleSessions: 5000, SessionTime: 4 * time.Second, BigCount: *big}
	if *verbose {
		cfg.ServerLog = os.Stderr
	}
	if *quick {
		cfg.Rounds, cfg.IdleSessions, cfg.SessionTime = 1, 1000, 1500*time.Millisecond
	}
	if *idle > 0 {
		cfg.IdleSessions = *idle
	}
	if *sessTime > 0 {
		cfg.SessionTime = *sessTime
	}
	var err error
	if cfg.Repo, err = filepath.Abs(*repo); err != nil {
		fatal(err)
	}
	if cfg.RefBin, err = filepath.Abs(cfg.RefBin); err != nil {
		fatal(err)
	}
	if *probeBin != "" {
		if cfg.ProbeBin, err = filepath.Abs(*probeBin); err != nil {
			fatal(err)
		}
	}
	parent := os.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		parent = "/dev/shm"
	}
	if *work != "" {
		cfg.Work = *work
	} else if cfg.Work, err = os.MkdirTemp(parent, "pop3bench-"); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, cfg); err != nil {
		fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(cfg.Out, "latest.md"))
	os.Stdout.Write(md)
}

func load(args []string) int {
	fl := flag.NewFlagSet("pop3bench load", flag.ExitOnError)
	addr := fl.String("addr", "127.0.0.1:110", "POP3 host:port")
	user := fl.String("user", "", "user")
	pass := fl.String("pass", "", "password")
	clients := fl.Int("clients", 16, "concurrent clients")
	d := fl.Duration("duration", 5*time.Second, "duration")
	fl.Parse(args)
	r := bench.Sessions(*addr, []bench.Account{{User: *user, Pass: *pass}}, *clients, *d, 1_000_000)
	fmt.Printf("%d sessions in %v: %.0f sessions/s, %d errors", r.Sessions, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Errors)
	if r.FirstErr != nil {
		fmt.Printf(" (first: %v)", r.FirstErr)
	}
	fmt.Println()
	return 0
}

// stuff byte-stuffs a CRLF message for the canned server's RETR reply.
func stuff(msg []byte) []byte {
	var out []byte
	start := true
	for _, c := range msg {
		if start && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		start = c == '\n'
	}
	return out
}

func devnull() *os.File {
	f, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	return f
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "pop3bench:", err)
	os.Exit(1)
}
