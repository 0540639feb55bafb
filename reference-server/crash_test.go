package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// TestMain removes the binary that binary built, which the tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// binary builds the command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "reference-server-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "reference-server")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// running is one reference-server process.
type running struct {
	cmd       *exec.Cmd
	pop3      string
	smtp      string
	stderrBuf *lockedBuffer
	exited    chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var smtpAddrRE = regexp.MustCompile(`msg="delivery listening" addr=(\S+)`)

// start runs the binary on data and waits for its listeners.
func start(t *testing.T, bin, data string, extra ...string) *running {
	t.Helper()
	args := append([]string{"--profile", "exchange2010", "--listen", "127.0.0.1:0", "--tls-listen", "",
		"--data", data, "--smtp-listen", "127.0.0.1:0", "--log-level", "info"}, extra...)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{cmd: cmd, stderrBuf: &lockedBuffer{}, exited: make(chan struct{})}
	smtpCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			r.stderrBuf.Write([]byte(line + "\n"))
			if m := smtpAddrRE.FindStringSubmatch(line); m != nil && !sent {
				smtpCh <- m[1]
				sent = true
			}
		}
		if !sent {
			close(smtpCh)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no listening line: %v\n%s", err, r.stderrBuf.String())
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[1], "pop3=") {
		t.Fatalf("listening line %q", line)
	}
	r.pop3 = strings.TrimPrefix(f[1], "pop3=")
	select {
	case r.smtp = <-smtpCh:
	case <-time.After(10 * time.Second):
	}
	if r.smtp == "" {
		cmd.Process.Kill()
		t.Fatalf("no SMTP address in the log:\n%s", r.stderrBuf.String())
	}
	go func() { cmd.Wait(); close(r.exited) }()
	return r
}

func (r *running) kill(t *testing.T) {
	r.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("process did not die after SIGKILL")
	}
}

// popSession is what a client knows of one session when the server dies.
type popSession struct {
	user    string
	marked  []string // UIDs it sent DELE for and got +OK
	quitOut bool     // QUIT was sent
	quitOK  bool     // QUIT got +OK: UPDATE completed
}

// runPOP logs in, marks about a third of the messages and QUITs. It stops
// at the first error (the server was killed).
func runPOP(addr, user, pass string, rng *rand.Rand, quitting chan<- struct{}) *popSession {
	ps := &popSession{user: user}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return ps
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	cmd := func(line string) (string, bool) {
		if line != "" {
			if _, err := io.WriteString(c, line+"\r\n"); err != nil {
				return "", false
			}
		}
		resp, err := r.ReadString('\n')
		return resp, err == nil && strings.HasPrefix(resp, "+OK")
	}
	if _, ok := cmd(""); !ok {
		return ps
	}
	if _, ok := cmd("USER " + user); !ok {
		return ps
	}
	if _, ok := cmd("PASS " + pass); !ok {
		return ps
	}
	if _, ok := cmd("UIDL"); !ok {
		return ps
	}
	var listing []string // "n uid"
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return ps
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "." {
			break
		}
		listing = append(listing, l)
	}
	for _, l := range listing {
		if rng.IntN(3) != 0 {
			continue
		}
		f := strings.Fields(l)
		if _, ok := cmd("DELE " + f[0]); !ok {
			return ps
		}
		ps.marked = append(ps.marked, f[1])
	}
	ps.quitOut = true
	select {
	case quitting <- struct{}{}:
	default:
	}
	_, ps.quitOK = cmd("QUIT")
	return ps
}

// mailing is one SMTP delivery and whether the server acknowledged it.
type mailing struct {
	user  string
	body  []byte // as stored: CRLF
	acked bool
}

func deliver(addr, user string, round, k int) *mailing {
	body := fmt.Sprintf("From: crash@test\r\nTo: %s@localhost\r\nSubject: round %d message %d\r\n\r\n%s\r\n.leading dot\r\n",
		user, round, k, strings.Repeat(fmt.Sprintf("round %d message %d filler line\r\n", round, k), 20+k*50))
	d := &mailing{user: user, body: maildrop.Normalize([]byte(body))}
	err := smtp.SendMail(addr, nil, "crash@test", []string{user + "@localhost"}, []byte(body))
	d.acked = err == nil
	return d
}

// model is what the test knows must be in the store.
type model struct {
	msgs   map[string]map[string][]byte // user -> uid -> content
	maxUID map[string]uint64            // highest UID ever seen, deleted or not
}

func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestCrashSafeUpdate kills the server with SIGKILL at random moments while
// sessions DELE and QUIT and SMTP delivers, then checks the maildrop after
// every kill: nothing lost that no completed UPDATE removed, every message
// byte-identical, no temporary file left once the store is open, every
// message removed by an acknowledged QUIT gone, UIDs only ever growing.
func TestCrashSafeUpdate(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	if v, err := strconv.Atoi(os.Getenv("CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	bin := binary(t)
	data := t.TempDir()
	users := map[string]string{"alice": "wonderland", "bob": "two words"}

	// First start seeds; a clean stop gives the baseline.
	first := start(t, bin, data)
	first.kill(t)
	m := model{msgs: map[string]map[string][]byte{}, maxUID: map[string]uint64{}}
	{
		st, err := maildrop.Open(data, maildrop.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for u := range users {
			m.msgs[u] = map[string][]byte{}
			list, err := st.Messages(u)
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range list {
				b, err := st.ReadMessage(u, msg.UID)
				if err != nil {
					t.Fatal(err)
				}
				m.msgs[u][msg.UID] = b
				n, _ := strconv.ParseUint(msg.UID, 10, 64)
				m.maxUID[u] = max(m.maxUID[u], n)
			}
		}
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	var stats struct {
		updatesDone, updatesCut, delivered, deliveriesCut, removed, tmpLeft int
	}
	began := time.Now()
	for round := range rounds {
		srv := start(t, bin, data)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			sessions []*popSession
			delivs   []*mailing
			quitting = make(chan struct{}, 1)
		)
		for i, u := range []string{"alice", "bob", "alice"} {
			wg.Add(1)
			seed := rng.Uint64()
			go func() {
				defer wg.Done()
				ps := runPOP(srv.pop3, u, users[u], rand.New(rand.NewPCG(seed, uint64(i))), quitting)
				mu.Lock()
				sessions = append(sessions, ps)
				mu.Unlock()
			}()
		}
		for k, u := range []string{"alice", "bob"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := deliver(srv.smtp, u, round, k)
				mu.Lock()
				delivs = append(delivs, d)
				mu.Unlock()
			}()
		}
		// Logins cost a bcrypt comparison; the window covers login, DELE,
		// UPDATE and delivery in most rounds and cuts them short in many.
		// Every other round aims at UPDATE: the kill follows a QUIT by
		// 0..3 ms.
		if round%2 == 0 {
			select {
			case <-quitting:
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			case <-time.After(400 * time.Millisecond):
			}
		} else {
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		}
		srv.kill(t)
		wg.Wait()

		left := tmpFiles(t, data)
		stats.tmpLeft += len(left)
		st, err := maildrop.Open(data, maildrop.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if tmp := tmpFiles(t, data); len(tmp) > 0 {
			t.Fatalf("round %d: temporary files still there after Open: %v", round, tmp)
		}
		mustGone := map[string]bool{}
		mayGone := map[string]bool{}
		for _, ps := range sessions {
			for _, uid := range ps.marked {
				key := ps.user + "/" + uid
				if ps.quitOK {
					mustGone[key] = true
				} else if ps.quitOut {
					mayGone[key] = true
				}
			}
			switch {
			case ps.quitOK:
				stats.updatesDone++
			case ps.quitOut:
				stats.updatesCut++
			}
		}
		prevMax := map[string]uint64{}
		for u := range users {
			prevMax[u] = m.maxUID[u]
		}
		// A message delivered this round may have been listed, marked and
		// removed by a session of the same round.
		removedNew := map[string]int{}
		for _, ps := range sessions {
			for _, uid := range ps.marked {
				n, _ := strconv.ParseUint(uid, 10, 64)
				if n > prevMax[ps.user] && ps.quitOut {
					removedNew[ps.user]++
				}
			}
		}
		for u := range users {
			list, err := st.Messages(u)
			if err != nil {
				t.Fatal(err)
			}
			present := map[string]bool{}
			for _, msg := range list {
				present[msg.UID] = true
				got, err := st.ReadMessage(u, msg.UID)
				if err != nil {
					t.Fatalf("round %d: %s/%s unreadable: %v", round, u, msg.UID, err)
				}
				n, err := strconv.ParseUint(msg.UID, 10, 64)
				if err != nil {
					t.Fatalf("round %d: UID %q", round, msg.UID)
				}
				if want, ok := m.msgs[u][msg.UID]; ok {
					if !bytes.Equal(got, want) {
						t.Fatalf("round %d: %s/%s changed (%d octets, want %d)", round, u, msg.UID, len(got), len(want))
					}
					if mustGone[u+"/"+msg.UID] {
						t.Fatalf("round %d: %s/%s still there after QUIT was acknowledged", round, u, msg.UID)
					}
					continue
				}
				// A new message: one of this round's deliveries, whole.
				if n <= prevMax[u] {
					t.Fatalf("round %d: new message %s/%s has a UID not above %d: reused or gone backwards", round, u, msg.UID, prevMax[u])
				}
				var match *mailing
				for _, d := range delivs {
					if d.user == u && bytes.Equal(d.body, got) {
						match = d
					}
				}
				if match == nil {
					t.Fatalf("round %d: %s/%s (%d octets) is no delivery of this round: a partial message?", round, u, msg.UID, len(got))
				}
				m.msgs[u][msg.UID] = got
				m.maxUID[u] = max(m.maxUID[u], n)
				stats.delivered++
			}
			for _, ps := range sessions {
				for _, uid := range ps.marked {
					if n, _ := strconv.ParseUint(uid, 10, 64); ps.user == u {
						m.maxUID[u] = max(m.maxUID[u], n)
					}
				}
			}
			for uid := range m.msgs[u] {
				if present[uid] {
					continue
				}
				key := u + "/" + uid
				if !mustGone[key] && !mayGone[key] {
					t.Fatalf("round %d: %s lost: no completed or interrupted UPDATE removed it", round, key)
				}
				delete(m.msgs[u], uid)
				stats.removed++
			}
			for _, d := range delivs {
				if d.user != u {
					continue
				}
				found := false
				for _, b := range m.msgs[u] {
					if bytes.Equal(b, d.body) {
						found = true
					}
				}
				if d.acked && !found && removedNew[u] == 0 {
					t.Fatalf("round %d: a delivery to %s acknowledged with 250 is not in the store", round, u)
				}
				if !d.acked {
					stats.deliveriesCut++
				}
			}
			// The counter is ahead of every UID ever handed out.
			raw, err := os.ReadFile(filepath.Join(data, "users", u, "uidnext"))
			if err != nil {
				t.Fatal(err)
			}
			next, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
			if err != nil || next <= m.maxUID[u] {
				t.Fatalf("round %d: %s uidnext %q not above the highest UID %d", round, u, raw, m.maxUID[u])
			}
		}
	}
	t.Logf("%d SIGKILL rounds in %v: %d UPDATEs completed, %d cut short, %d messages removed, %d delivered, %d deliveries cut short, %d temporary files cleaned at restart",
		rounds, time.Since(began).Round(time.Millisecond), stats.updatesDone, stats.updatesCut, stats.removed, stats.delivered, stats.deliveriesCut, stats.tmpLeft)
}
