// Package bench is the load generator of `make bench`: the same POP3
// workloads against any host (the reference server, Dovecot, a canned-reply
// loopback server), plus the orchestration that starts the servers, seeds
// them, interleaves the measurements and writes reports/bench/latest.{md,json}.
//
// Every loop here is bounded both in count and in time.
package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Account is a login on a target.
type Account struct{ User, Pass string }

// conn is a minimal, strict-enough POP3 client: it only needs to tell +OK
// from anything else and find the end of a multi-line response. It stays
// apart from the suite's client (suites/harness.Conn) because it is what
// the benchmark times: that client classifies every line in the wire
// guard, records and redacts a transcript and allocates per line, which
// would be measured as the server's cost; this one reuses its buffers and
// counts the octets of a RETR without keeping them.
type conn struct {
	c    net.Conn
	br   *bufio.Reader
	wb   []byte
	rbuf []byte
}

func dial(addr string, timeout time.Duration) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	cn := &conn{c: c, br: bufio.NewReaderSize(c, 4<<10)}
	if _, err := cn.status(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return cn, nil
}

func (c *conn) Close() error { return c.c.Close() }

// status reads one status line and fails unless it is +OK.
func (c *conn) status() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(line, []byte("+OK")) {
		return nil, fmt.Errorf("server said %q", bytes.TrimRight(line, "\r\n"))
	}
	return line, nil
}

// cmd sends one command and reads its status line.
func (c *conn) cmd(line string) error {
	c.wb = append(append(c.wb[:0], line...), '\r', '\n')
	if _, err := c.c.Write(c.wb); err != nil {
		return err
	}
	if _, err := c.status(); err != nil {
		return fmt.Errorf("%s: %w", firstWord(line), err)
	}
	return nil
}

// multi reads a multi-line body up to the terminating ".": it returns the
// octets received (stuffed, terminator included). The client sends nothing
// while a response is outstanding, so the response ends exactly when the
// received octets end in CRLF "." CRLF (a stuffed body never holds
// CRLF "." CRLF inside); the status line's CRLF counts for an empty body.
func (c *conn) multi() (int64, error) {
	var n int64
	tail := []byte("\r\n")
	buf := c.rb()
	for {
		k, err := c.br.Read(buf)
		if k > 0 {
			n += int64(k)
			if k >= 5 {
				tail = append(tail[:0], buf[k-5:k]...)
			} else {
				tail = append(tail, buf[:k]...)
				if len(tail) > 5 {
					tail = tail[len(tail)-5:]
				}
			}
			if bytes.Equal(tail, []byte("\r\n.\r\n")) {
				return n - 3, nil
			}
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
}

func (c *conn) rb() []byte {
	if c.rbuf == nil {
		c.rbuf = make([]byte, 256<<10)
	}
	return c.rbuf
}

func (c *conn) login(a Account) error {
	if err := c.cmd("USER " + a.User); err != nil {
		return err
	}
	return c.cmd("PASS " + a.Pass)
}

func firstWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i]
		}
	}
	return s
}

// session is the sessions/s workload: connect, USER/PASS, STAT, UIDL,
// RETR 1, QUIT.
func session(addr string, a Account) error {
	c, err := dial(addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.login(a); err != nil {
		return err
	}
	if err := c.cmd("STAT"); err != nil {
		return err
	}
	if err := c.cmd("UIDL"); err != nil {
		return err
	}
	if _, err := c.multi(); err != nil {
		return err
	}
	if err := c.cmd("RETR 1"); err != nil {
		return err
	}
	if _, err := c.multi(); err != nil {
		return err
	}
	return c.cmd("QUIT")
}

// SessionResult is one sessions/s measurement.
type SessionResult struct {
	Sessions int
	Errors   int
	Elapsed  time.Duration
	FirstErr error
}

// Rate is completed sessions per second.
func (r SessionResult) Rate() float64 { return float64(r.Sessions) / r.Elapsed.Seconds() }

// Sessions runs clients loops of session() for d (at most maxPerClient
// sessions each); client i logs in as accounts[i%len(accounts)].
func Sessions(addr string, accounts []Account, clients int, d time.Duration, maxPerClient int) SessionResult {
	type res struct {
		ok, bad int
		err     error
	}
	out := make(chan res, clients)
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; i < clients; i++ {
		a := accounts[i%len(accounts)]
		go func() {
			var r res
			for k := 0; k < maxPerClient && time.Now().Before(deadline); k++ {
				if err := session(addr, a); err != nil {
					r.bad++
					if r.err == nil {
						r.err = err
					}
					time.Sleep(time.Millisecond) // do not spin on a refusing server
					continue
				}
				r.ok++
			}
			out <- r
		}()
	}
	var total SessionResult
	for i := 0; i < clients; i++ {
		r := <-out
		total.Sessions += r.ok
		total.Errors += r.bad
		if total.FirstErr == nil {
			total.FirstErr = r.err
		}
	}
	total.Elapsed = time.Since(start)
	return total
}

// Retr logs in, times RETR msg until the final "." and returns MB/s
// (10^6 octets of the received, stuffed body per second).
func Retr(addr string, a Account, msg int, timeout time.Duration) (float64, int64, error) {
	c, err := dial(addr, timeout)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if err := c.login(a); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := c.cmd(fmt.Sprintf("RETR %d", msg)); err != nil {
		return 0, 0, err
	}
	n, err := c.multi()
	el := time.Since(t0)
	if err != nil {
		return 0, n, err
	}
	c.cmd("QUIT")
	return float64(n) / 1e6 / el.Seconds(), n, nil
}

// RawCopy measures the loopback TCP copy rate: one goroutine writes size
// octets from memory in 256 KiB writes, the reader discards them.
func RawCopy(size int64) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		buf := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\r\n"), 4096)
		left := size
		for left > 0 {
			b := buf
			if int64(len(b)) > left {
				b = b[:left]
			}
			if _, err := c.Write(b); err != nil {
				errc <- err
				return
			}
			left -= int64(len(b))
		}
		errc <- nil
	}()
	c, err := net.Dial("tcp", "127.0.0.1:"+fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 64<<10)
	t0 := time.Now()
	var got int64
	for got < size {
		n, err := c.Read(buf)
		got += int64(n)
		if err != nil {
			return 0, err
		}
	}
	el := time.Since(t0)
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(got) / 1e6 / el.Seconds(), nil
}

// Listing logs in to a big mailbox and times the login (PASS to +OK),
// STAT, LIST and UIDL (command sent to final "." received).
type ListingResult struct {
	Login, Stat, List, UIDL time.Duration
	ListOctets              int64
}

func Listing(addr string, a Account, timeout time.Duration) (ListingResult, error) {
	var r ListingResult
	c, err := dial(addr, timeout)
	if err != nil {
		return r, err
	}
	defer c.Close()
	if err := c.cmd("USER " + a.User); err != nil {
		return r, err
	}
	t0 := time.Now()
	if err := c.cmd("PASS " + a.Pass); err != nil {
		return r, err
	}
	r.Login = time.Since(t0)
	t0 = time.Now()
	if err := c.cmd("STAT"); err != nil {
		return r, err
	}
	r.Stat = time.Since(t0)
	t0 = time.Now()
	if err := c.cmd("LIST"); err != nil {
		return r, err
	}
	if r.ListOctets, err = c.multi(); err != nil {
		return r, err
	}
	r.List = time.Since(t0)
	t0 = time.Now()
	if err := c.cmd("UIDL"); err != nil {
		return r, err
	}
	if _, err := c.multi(); err != nil {
		return r, err
	}
	r.UIDL = time.Since(t0)
	c.cmd("QUIT")
	return r, nil
}

// IdleSessions opens n authenticated sessions (par at a time) and keeps
// them open until the returned closer runs. It gives up at deadline.
func IdleSessions(addr string, accounts []Account, n, par int, deadline time.Time) (closeAll func(), opened int, err error) {
	conns := make([]*conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, par)
	done := make(chan struct{})
	go func() {
		for i := 0; i < n; i++ {
			sem <- struct{}{}
			go func(i int) {
				defer func() { <-sem }()
				if time.Now().After(deadline) {
					errs <- errors.New("deadline")
					return
				}
				c, err := dial(addr, time.Until(deadline))
				if err == nil {
					if err = c.login(accounts[i%len(accounts)]); err != nil {
						c.Close()
					}
				}
				if err != nil {
					errs <- err
					return
				}
				c.c.SetDeadline(time.Time{})
				conns[i] = c
				errs <- nil
			}(i)
		}
		for i := 0; i < par; i++ {
			sem <- struct{}{}
		}
		close(done)
	}()
	<-done
	close(errs)
	for e := range errs {
		if e != nil && err == nil {
			err = e
		}
	}
	for _, c := range conns {
		if c != nil {
			opened++
		}
	}
	return func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}, opened, err
}
