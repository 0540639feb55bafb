// Package netsim puts a simulated network between a client and a server
// on this machine: a TCP proxy on loopback that delays every octet by a
// fixed one-way time in each direction, so a server on 127.0.0.1 answers
// as if it stood in another region. The benchmark and the tests use it to
// measure and to prove what the probe does across a network.
package netsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of one proxy: connections open at once, and octets in flight per
// direction of one connection (what the delay holds back). A reader that
// finds its direction full waits, as a sender waits on a full TCP window.
const (
	DefaultMaxConns = 64
	chunkOctets     = 32 << 10
	queueChunks     = 64 // 2 MiB in flight per direction
)

// Options configure a Proxy.
type Options struct {
	// OneWay is the delay added to each direction: a round trip costs
	// twice as much.
	OneWay time.Duration
	// MaxConns bounds the connections open at once (DefaultMaxConns when
	// 0); a further client waits in the listen backlog until one closes.
	MaxConns int
	// NoHandshake leaves out the TCP handshake's cost. By default the
	// upstream connection is opened 3×OneWay after the client's (SYN,
	// SYN-ACK, ACK cross the network before the server accepts), so a
	// greeting arrives two round trips after the connect, as across a
	// real network.
	NoHandshake bool
}

// Proxy forwards every connection it accepts on its loopback listener to
// one upstream address on loopback, delayed per Options. Octets keep their
// order, and a half-close (FIN) is forwarded after the octets before it.
type Proxy struct {
	opts     Options
	upstream string
	ln       net.Listener
	slots    chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	accepted atomic.Int64
	mu       sync.Mutex
	open     map[net.Conn]struct{}
}

// Start listens on 127.0.0.1 (an ephemeral port) and forwards to
// upstream, which must be a loopback address: the simulation never
// reaches another host.
func Start(upstream string, opts Options) (*Proxy, error) {
	if err := checkLoopback(upstream); err != nil {
		return nil, err
	}
	if opts.OneWay < 0 {
		return nil, fmt.Errorf("netsim: negative delay %v", opts.OneWay)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("netsim: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{opts: opts, upstream: upstream, ln: ln, slots: make(chan struct{}, opts.MaxConns),
		ctx: ctx, cancel: cancel, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("netsim: upstream %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("netsim: upstream %q is not a loopback address", addr)
	}
	return nil
}

// Addr is the proxy's listening address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted counts the client connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Close stops listening, cuts every open connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		select {
		case p.slots <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		c, err := p.ln.Accept()
		if err != nil {
			<-p.slots
			return
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.slots }()
			p.forward(c.(*net.TCPConn))
		}()
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		_ = c.Close()
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	_ = c.Close()
}

// forward runs one proxied connection until both directions ended.
func (p *Proxy) forward(client *net.TCPConn) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	// The readers end when their connection closes; ctx frees one
	// blocked on a full queue.
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	// The client may write before the server accepted: its octets wait in
	// the queue, stamped with the time they were sent.
	up := newLink(ctx, p.opts.OneWay)
	go up.read(client)
	if !p.opts.NoHandshake && !sleep(ctx, 3*p.opts.OneWay) {
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	sc, err := d.DialContext(ctx, "tcp", p.upstream)
	if err != nil {
		return // the client sees a close, as from a server that refused
	}
	server := sc.(*net.TCPConn)
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	down := newLink(ctx, p.opts.OneWay)
	go down.read(server)
	var wg sync.WaitGroup
	wg.Add(2)
	cut := func() { _ = client.Close(); _ = server.Close() }
	go func() { defer wg.Done(); up.write(server, cut) }()
	go func() { defer wg.Done(); down.write(client, cut) }()
	wg.Wait()
}

// chunk is octets read at one moment, due at the other end at due; eof
// marks the reader's end (FIN when clean, err otherwise).
type chunk struct {
	data []byte
	due  time.Time
	eof  bool
	err  error
}

// link is one direction of a connection: a FIFO of chunks, so order is
// kept, bounded by queueChunks.
type link struct {
	ctx   context.Context
	delay time.Duration
	q     chan chunk
}

func newLink(ctx context.Context, delay time.Duration) *link {
	return &link{ctx: ctx, delay: delay, q: make(chan chunk, queueChunks)}
}

func (l *link) read(src net.Conn) {
	for {
		buf := make([]byte, chunkOctets)
		n, err := src.Read(buf)
		if n > 0 {
			if !l.put(chunk{data: buf[:n], due: time.Now().Add(l.delay)}) {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			l.put(chunk{eof: true, err: err, due: time.Now().Add(l.delay)})
			return
		}
	}
}

func (l *link) put(c chunk) bool {
	select {
	case l.q <- c:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// write delivers the chunks to dst when due. A clean end is forwarded as
// a half-close; a failure on either side cuts the whole connection.
func (l *link) write(dst *net.TCPConn, cut func()) {
	for {
		var c chunk
		select {
		case c = <-l.q:
		case <-l.ctx.Done():
			cut()
			return
		}
		if !sleep(l.ctx, time.Until(c.due)) {
			cut()
			return
		}
		if c.eof {
			if c.err != nil {
				cut()
			} else {
				_ = dst.CloseWrite()
			}
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			cut()
			return
		}
	}
}

// sleep waits d (nothing when d ≤ 0) and reports false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
