package conformance

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// robustRaw is the robustness specs' bare client for attacks: it writes
// exactly what it is given, from any goroutine, and keeps a short log for
// the report; the specs' checks stay in robustness.go. It is not
// harness.Conn because the attacks need what that client must not do: a
// writer goroutine racing the reader (10,000 pipelined NOOPs), writes of
// megabytes or of single octets straight to the socket, unrecorded (a
// 10 MiB line, a slowloris), and a log cut at 200 entries rather than a
// transcript of every line. What it writes through write passes the
// harness's wire guard and is logged through the harness's redactor.
type robustRaw struct {
	nc  net.Conn
	br  *bufio.Reader
	tls bool
	// guard admits every write as harness.Conn's does; gmu keeps writes
	// from several goroutines from racing on its state.
	guard *harness.LineGuard
	gmu   sync.Mutex

	mu  sync.Mutex
	log []string
	// greeting is the greeting when it was read before the spec took the
	// connection ("" otherwise).
	greeting string
}

func (r *robustRaw) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.log) < 200 {
		r.log = append(r.log, fmt.Sprintf(format, args...))
	} else if len(r.log) == 200 {
		r.log = append(r.log, "... (log cut)")
	}
}

func (r *robustRaw) handshake(cfg *tls.Config) error {
	tc := tls.Client(r.nc, cfg)
	_ = tc.SetDeadline(time.Now().Add(harness.DefaultTimeout))
	if err := tc.Handshake(); err != nil {
		r.note("* TLS handshake failed: %v", err)
		return err
	}
	_ = tc.SetDeadline(time.Time{})
	r.nc, r.br, r.tls = tc, bufio.NewReaderSize(tc, 64<<10), true
	r.note("* TLS handshake done")
	return nil
}

func (r *robustRaw) startTLS(t *harness.Target) error {
	if err := r.write([]byte("STLS\r\n")); err != nil {
		return err
	}
	l, err := r.line(harness.DefaultTimeout)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, "+OK") {
		return fmt.Errorf("STLS refused: %q", l)
	}
	return r.handshake(t.TLSConfig())
}

// write sends b; the log shows at most its first 80 octets.
func (r *robustRaw) write(b []byte) error {
	show := b
	if len(show) > 80 {
		show = show[:80]
	}
	if shown, secret := harness.RedactCommand(string(show)); secret {
		show = []byte(shown)
	}
	r.gmu.Lock()
	err := r.guard.Admit(b)
	r.gmu.Unlock()
	if err != nil {
		r.note("* not sent: %q: %v", show, err)
		return err
	}
	r.note("C: %q (%d octets)", show, len(b))
	_ = r.nc.SetWriteDeadline(time.Now().Add(harness.DefaultTimeout))
	_, err = r.nc.Write(b)
	if err != nil {
		r.note("* write failed: %v", err)
	}
	return err
}

// line reads one line within d, at most 64 KiB of it.
func (r *robustRaw) line(d time.Duration) (string, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(d))
	var b []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		b = append(b, frag...)
		if err == nil {
			s := string(b)
			r.note("S: %q", strings.TrimRight(s, "\r\n"))
			status, _, _ := strings.Cut(strings.TrimRight(s, "\r\n"), " ")
			r.gmu.Lock()
			r.guard.Reply(status)
			r.gmu.Unlock()
			return s, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) && len(b) < 64<<10 {
			continue
		}
		r.note("* read: %v (partial %q)", err, b)
		return string(b), err
	}
}

// closedWithin waits for the server to close, discarding what it sends.
func (r *robustRaw) closedWithin(d time.Duration) bool {
	deadline := time.Now().Add(d)
	buf := make([]byte, 4096)
	for {
		_ = r.nc.SetReadDeadline(deadline)
		_, err := r.br.Read(buf)
		if err == nil {
			continue
		}
		r.note("* read: %v", err)
		return !robustIsTimeout(err)
	}
}

func robustIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (r *robustRaw) closeWrite() error {
	type closeWriter interface{ CloseWrite() error }
	cw, ok := r.nc.(closeWriter)
	if !ok {
		return errors.New("transport cannot half-close")
	}
	r.note("* client half-closed the connection")
	return cw.CloseWrite()
}
