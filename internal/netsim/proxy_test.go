package netsim

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer answers each line with "echo <line>", says "greeting" first
// when greet is set, and after the client's half-close writes "bye" and
// closes.
func echoServer(t *testing.T, greet bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if greet {
					fmt.Fprint(c, "greeting\n")
				}
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						fmt.Fprint(c, "bye\n")
						return
					}
					fmt.Fprint(c, "echo "+l)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, upstream string, opts Options) *Proxy {
	t.Helper()
	p, err := Start(upstream, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestDelayEachWay(t *testing.T) {
	const oneWay = 20 * time.Millisecond
	for _, tc := range []struct {
		name      string
		opts      Options
		greetMin  time.Duration // connect to greeting
		greetMax  time.Duration
		roundTrip time.Duration
	}{
		{"with handshake", Options{OneWay: oneWay}, 4 * oneWay, 4*oneWay + 150*time.Millisecond, 2 * oneWay},
		{"without handshake", Options{OneWay: oneWay, NoHandshake: true}, oneWay, oneWay + 150*time.Millisecond, 2 * oneWay},
		{"no delay", Options{NoHandshake: true}, 0, 150 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, echoServer(t, true), tc.opts)
			start := time.Now()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			if l, err := br.ReadString('\n'); err != nil || l != "greeting\n" {
				t.Fatalf("greeting %q, %v", l, err)
			}
			if g := time.Since(start); g < tc.greetMin || g > tc.greetMax {
				t.Errorf("greeting after %v, want %v..%v", g, tc.greetMin, tc.greetMax)
			}
			for i := 0; i < 3; i++ {
				sent := time.Now()
				fmt.Fprintf(c, "ping %d\n", i)
				l, err := br.ReadString('\n')
				if err != nil || l != fmt.Sprintf("echo ping %d\n", i) {
					t.Fatalf("reply %q, %v", l, err)
				}
				if rt := time.Since(sent); rt < tc.roundTrip || rt > tc.roundTrip+100*time.Millisecond {
					t.Errorf("round trip %d took %v, want %v (+ at most 100ms)", i, rt, tc.roundTrip)
				}
			}
			if n := p.Accepted(); n != 1 {
				t.Errorf("accepted %d connections, want 1", n)
			}
		})
	}
}

// Many small writes, sent faster than the delay, arrive whole and in
// order, and the client's half-close reaches the server only after them:
// its "bye" comes after every echo, then the server's close.
func TestOrderAndHalfClose(t *testing.T) {
	p := startProxy(t, echoServer(t, false), Options{OneWay: 5 * time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 2000
	var want strings.Builder
	go func() {
		for i := 0; i < n; i++ {
			fmt.Fprintf(c, "line %d\n", i)
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	for i := 0; i < n; i++ {
		fmt.Fprintf(&want, "echo line %d\n", i)
	}
	want.WriteString("bye\n")
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != want.String() {
		t.Fatalf("got %d octets, want %d; order or content differs", len(got), want.Len())
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:110", "example.org:110", "nonsense"} {
		if p, err := Start(addr, Options{}); err == nil {
			p.Close()
			t.Errorf("Start(%q) accepted a non-loopback upstream", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:110", "[::1]:110", "localhost:110"} {
		p, err := Start(addr, Options{})
		if err != nil {
			t.Errorf("Start(%q): %v", addr, err)
			continue
		}
		p.Close()
	}
}

// A slow reader does not make the proxy buffer without bound: the sender
// stalls once a direction holds its limit.
func TestBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		var total int64
		c.SetWriteDeadline(time.Now().Add(time.Second))
		for {
			n, err := c.Write(buf)
			total += int64(n)
			if err != nil {
				break
			}
		}
		sent <- total
	}()
	p := startProxy(t, ln.Addr().String(), Options{NoHandshake: true})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Never read: the server stalls after socket buffers and the proxy's
	// queue are full.
	got := <-sent
	if limit := int64(queueChunks*chunkOctets) + 64<<20; got > limit {
		t.Errorf("server wrote %d octets to a client that reads nothing; want the proxy to stall it (under %d)", got, limit)
	}
}
