package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing/fstest"
	"time"

	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// Password of every benchmark account.
const Password = "bench-pw"

// Data is the mailbox content both servers get.
type Data struct {
	SessionUsers int    // bs000.. with one 4 KB message each
	Small        []byte // the 4 KB message
	Mid, Large   []byte // bretr's messages 1 (300 KB) and 2 (20 MB)
	BigCount     int    // bbig's message count
	Big          [][]byte
}

func NewData(sessionUsers, bigCount int) *Data {
	d := &Data{
		SessionUsers: sessionUsers,
		Small:        Message(4096, "small"),
		Mid:          Message(300<<10, "mid"),
		Large:        Message(20<<20, "large"),
		BigCount:     bigCount,
	}
	for i := 0; i < 10; i++ {
		d.Big = append(d.Big, Message(1000+100*i, fmt.Sprintf("big-%d", i)))
	}
	return d
}

func (d *Data) SessionAccounts() []Account {
	out := make([]Account, d.SessionUsers)
	for i := range out {
		out[i] = Account{fmt.Sprintf("bs%03d", i), Password}
	}
	return out
}

var (
	RetrAccount = Account{"bretr", Password}
	BigAccount  = Account{"bbig", Password}
)

// SeedReference writes the benchmark users into a reference-server data
// directory with the maildrop store API (Store.Seed), before the server
// starts.
func SeedReference(dir string, d *Data) error {
	st, err := maildrop.Open(dir, maildrop.Options{})
	if err != nil {
		return err
	}
	fsys := fstest.MapFS{
		"small.eml": {Data: d.Small},
		"mid.eml":   {Data: d.Mid},
		"large.eml": {Data: d.Large},
	}
	for i, m := range d.Big {
		fsys[fmt.Sprintf("big%d.eml", i)] = &fstest.MapFile{Data: m}
	}
	var y strings.Builder
	y.WriteString("users:\n")
	for _, a := range d.SessionAccounts() {
		fmt.Fprintf(&y, "  - name: %s\n    password: %s\n    messages:\n      - small.eml\n", a.User, a.Pass)
	}
	fmt.Fprintf(&y, "  - name: %s\n    password: %s\n    messages:\n      - mid.eml\n      - large.eml\n", RetrAccount.User, Password)
	fmt.Fprintf(&y, "  - name: %s\n    password: %s\n    messages:\n", BigAccount.User, Password)
	for i := 0; i < d.BigCount; i++ {
		fmt.Fprintf(&y, "      - big%d.eml\n", i%len(d.Big))
	}
	fsys["users.yaml"] = &fstest.MapFile{Data: []byte(y.String())}
	return st.Seed(fsys)
}

// Proc is a started server process.
type Proc struct {
	Addr string
	Pid  int
	cmd  *exec.Cmd
	stop func()
}

func (p *Proc) Stop() {
	if p == nil {
		return
	}
	if p.stop != nil {
		p.stop()
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// StartReference runs the reference-server binary (exchange2010) on dir
// and waits for its "listening" line.
func StartReference(bin, dir string, logw io.Writer, extra ...string) (*Proc, error) {
	args := append([]string{"--profile", "exchange2010", "--listen", "127.0.0.1:0", "--tls-listen", "",
		"--data", dir, "--password-storage", "clear", "--log-level", "error"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logw
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Pid: cmd.Process.Pid, cmd: cmd}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-lines:
		for _, f := range strings.Fields(l) {
			if a, ok := strings.CutPrefix(f, "pop3="); ok {
				p.Addr = a
			}
		}
		if p.Addr == "" {
			p.Stop()
			return nil, fmt.Errorf("reference-server said %q", l)
		}
		return p, nil
	case <-time.After(2 * time.Minute):
		p.Stop()
		return nil, errors.New("reference-server did not start within 2 minutes")
	}
}

// StartSelf runs this executable's hidden "canned" mode as a separate
// process, so the canned server has its own runtime like the real ones.
func StartSelf(mode string) (*Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Pid: cmd.Process.Pid, cmd: cmd}
	br := bufio.NewReader(out)
	errc := make(chan error, 1)
	go func() {
		l, err := br.ReadString('\n')
		p.Addr = strings.TrimSpace(l)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			p.Stop()
			return nil, err
		}
		return p, nil
	case <-time.After(30 * time.Second):
		p.Stop()
		return nil, errors.New("canned server did not start")
	}
}

// DovecotOverrides are appended to start.sh's dovecot.conf: what a private
// Dovecot needs to take the benchmark's concurrency at all. Each is
// reported with the results.
var DovecotOverrides = []string{
	"mail_max_userip_connections = 20000  # default 10 per user and IP: 16/128 clients and 5000 idle sessions come from 127.0.0.1",
	"default_process_limit = 6000         # default 100: one pop3 process per authenticated session, one pop3-login per connection",
	"default_client_limit = 20000         # default 1000: anvil, auth and log clients grow with the processes",
	"default_vsz_limit = 1G               # default 256M",
	"service pop3 {\n  process_limit = 6000               # default 1024: one process per authenticated session\n}",
	"service pop3-login {\n  process_limit = 6000\n}",
}

// StartDovecot runs probe/peers/dovecot/start.sh in work (unchanged),
// adds the benchmark users and Maildirs, appends DovecotOverrides and
// restarts the instance with them.
func StartDovecot(repo, work string, d *Data, logw io.Writer) (*Proc, error) {
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = logw, logw
		return cmd.Run()
	}
	if err := run(filepath.Join(repo, "probe/peers/dovecot/start.sh"), work); err != nil {
		return nil, fmt.Errorf("start.sh: %w", err)
	}
	stop := func() { stopDovecot(work) }
	stop()
	env, err := os.ReadFile(filepath.Join(work, "env"))
	if err != nil {
		return nil, err
	}
	port := ""
	for _, l := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(l, "POP3_PORT="); ok {
			port = v
		}
	}
	uid, gid := -1, -1
	if os.Getuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, err
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	pw, err := os.OpenFile(filepath.Join(work, "passwd"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	ts := 1700100000
	n := 0
	addUser := func(name string, msgs [][]byte) error {
		fmt.Fprintf(pw, "%s:{PLAIN}%s::::::\n", name, Password)
		md := filepath.Join(work, "home", name, "Maildir")
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
				return err
			}
		}
		for _, m := range msgs {
			n++
			ts++
			lf := ToLF(m)
			// ,S= and ,W= as Dovecot's own deliveries write them: the file
			// size and the CRLF size, so neither server reads bodies for
			// STAT or LIST.
			f := filepath.Join(md, "cur", fmt.Sprintf("%d.M%dP1.pop3bench,S=%d,W=%d:2,", ts, n, len(lf), len(m)))
			if err := os.WriteFile(f, lf, 0o600); err != nil {
				return err
			}
			if uid >= 0 {
				os.Chown(f, uid, gid)
			}
			os.Chtimes(f, time.Unix(int64(ts), 0), time.Unix(int64(ts), 0))
		}
		if uid >= 0 {
			return filepath.Walk(filepath.Join(work, "home", name), func(p string, _ os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, uid, gid)
			})
		}
		return nil
	}
	for _, a := range d.SessionAccounts() {
		if err := addUser(a.User, [][]byte{d.Small}); err != nil {
			return nil, err
		}
	}
	if err := addUser(RetrAccount.User, [][]byte{d.Mid, d.Large}); err != nil {
		return nil, err
	}
	big := make([][]byte, d.BigCount)
	for i := range big {
		big[i] = d.Big[i%len(d.Big)]
	}
	if err := addUser(BigAccount.User, big); err != nil {
		return nil, err
	}
	if err := pw.Close(); err != nil {
		return nil, err
	}
	conf, err := os.OpenFile(filepath.Join(work, "dovecot.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(conf, "\n# pop3bench overrides (probe/bench/servers.go)\n")
	for _, o := range DovecotOverrides {
		fmt.Fprintln(conf, o)
	}
	conf.Close()
	if err := run("dovecot", "-c", filepath.Join(work, "dovecot.conf")); err != nil {
		return nil, fmt.Errorf("restart dovecot: %w", err)
	}
	addr := "127.0.0.1:" + port
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid := 0
	for i := 0; i < 100 && pid == 0; i++ {
		if b, err := os.ReadFile(filepath.Join(work, "run", "master.pid")); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if pid == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if pid == 0 {
		stop()
		return nil, errors.New("dovecot wrote no master.pid")
	}
	return &Proc{Addr: addr, Pid: pid, stop: stop}, nil
}

// TreeMemory sums VmRSS and RssAnon (bytes) over pid and all its
// descendants, from /proc/PID/status. (smaps_rollup, hence Pss, is not
// readable for Dovecot's non-dumpable processes without CAP_SYS_PTRACE.)
func TreeMemory(pid int) (rss, anon int64, procs int) {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	var walk func(int, int)
	walk = func(p, depth int) {
		if depth > 10 {
			return
		}
		procs++
		r, a := procMemory(p)
		rss += r
		anon += a
		for _, c := range children[p] {
			walk(c, depth+1)
		}
	}
	if pid > 1 {
		walk(pid, 0)
	}
	return
}

func procMemory(pid int) (rss, anon int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "RssAnon:":
			anon = v << 10
		}
	}
	return
}

// RunTimed runs a command and returns its wall time.
func RunTimed(ctx context.Context, dir string, logw io.Writer, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logw, logw
	t0 := time.Now()
	err := cmd.Run()
	return time.Since(t0), err
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

// stopDovecot stops the instance in work like its stop.sh, but treats a
// zombie master (in a container whose init does not reap) as stopped and
// removes its pid file, which would otherwise block the restart.
func stopDovecot(work string) {
	pidfile := filepath.Join(work, "run", "master.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 1 {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break
		}
		if j := strings.LastIndexByte(string(st), ')'); j > 0 && strings.HasPrefix(string(st[j+1:]), " Z") {
			break
		}
		time.Sleep(50 * time.Millisecond)
		if i == 99 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	os.Remove(pidfile)
}
