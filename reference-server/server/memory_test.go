package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// heapSampler records the largest live heap seen while it runs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > h.peak.Load() {
				h.peak.Store(ms.HeapAlloc)
			}
			select {
			case <-h.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

const mib = 1 << 20

// TestMemoryUnderAttack proves that the server streams: 200 connections
// each sending a 1 MB line without CRLF, then slow readers holding RETR of
// a 20 MB message open, must not grow the heap by more than a bound far
// below what buffering would take (200 MB and 20 MB per reader). After
// Shutdown every goroutine of the server is gone. The figures are logged.
func TestMemoryUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 220 MB over loopback")
	}
	const bound = 64 * mib
	baseGoroutines := runtime.NumGoroutine()
	// The sessions must outlive their line: -ERR and go on, and the
	// built-in QUIT text the check looks for.
	p := loadProfile(t, "exchange2010")
	p.OverlongCommand = profile.OverlongErr
	p.Replies.Quit = ""
	ts := startServer(t, p)

	// Attack 1: 200 long lines at once.
	base := liveHeap()
	h := sampleHeap()
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	var wg sync.WaitGroup
	var conns sync.Map
	var failures atomic.Int32
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", ts.plain, 5*time.Second)
			if err != nil {
				failures.Add(1)
				return
			}
			conns.Store(i, c)
			c.SetDeadline(time.Now().Add(60 * time.Second))
			for sent := 0; sent < mib; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					failures.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	held := liveHeap()
	peak1 := h.Stop()
	if failures.Load() > 0 {
		t.Fatalf("%d of 200 connections could not send their line", failures.Load())
	}
	// The lines end: every session answers -ERR and stays usable.
	conns.Range(func(_, v any) bool {
		c := v.(net.Conn)
		c.Write([]byte("\r\nQUIT\r\n"))
		return true
	})
	conns.Range(func(_, v any) bool {
		c := v.(net.Conn)
		out, _ := io.ReadAll(c)
		if !strings.Contains(string(out), "\r\n-ERR ") || !strings.Contains(string(out), "+OK Bye") {
			t.Errorf("after a 1 MB line: %q", out)
		}
		c.Close()
		return true
	})
	t.Logf("200 x 1 MiB lines: live heap %+.1f MiB while held, peak %+.1f MiB over the %.1f MiB baseline",
		float64(int64(held)-int64(base))/mib, float64(int64(peak1)-int64(base))/mib, float64(base)/mib)
	if peak1 > base+bound {
		t.Errorf("heap grew by %.1f MiB under 200 long lines; bound %d MiB", float64(peak1-base)/mib, bound/mib)
	}

	// Attack 2: slow readers of a 20 MB message.
	big := bytes.Repeat([]byte("0123456789012345678901234567890123456789012345678901234567890123456789\r\n"), 20*mib/72)
	if _, err := ts.store.Deliver("alice", append([]byte("Subject: big\r\n\r\n"), big...)); err != nil {
		t.Fatal(err)
	}
	big = nil
	base = liveHeap()
	h = sampleHeap()
	const readers = 10
	var slow []*client
	for range readers {
		c := ts.dial(t)
		c.login("alice", "wonderland")
		c.send("RETR 7\r\n")
		// Read a little, then stop reading: the server must block on the
		// socket, not buffer the rest.
		buf := make([]byte, 256<<10)
		io.ReadFull(c.r, buf)
		slow = append(slow, c)
	}
	// A reader that reads nothing at all.
	idle := ts.dial(t)
	idle.login("alice", "wonderland")
	idle.send("RETR 7\r\n")
	time.Sleep(300 * time.Millisecond)
	// Others are still served meanwhile.
	other := ts.dial(t)
	other.login("bob", "two words")
	wantPrefix(t, other.cmd("RETR 1"), "+OK")
	other.multi()
	wantPrefix(t, other.cmd("QUIT"), "+OK")
	held = liveHeap()
	peak2 := h.Stop()
	t.Logf("%d slow readers + 1 idle reader of a 20 MiB RETR: live heap %+.1f MiB while held, peak %+.1f MiB over the %.1f MiB baseline",
		readers, float64(int64(held)-int64(base))/mib, float64(int64(peak2)-int64(base))/mib, float64(base)/mib)
	if peak2 > base+bound {
		t.Errorf("heap grew by %.1f MiB under slow RETR readers; bound %d MiB", float64(peak2-base)/mib, bound/mib)
	}
	during := runtime.NumGoroutine()

	// Shutdown ends every session, the blocked writers included.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with blocked writers: %v", err)
	}
	for _, c := range append(slow, idle) {
		c.conn.Close()
	}
	var now int
	for range 100 {
		if now = runtime.NumGoroutine(); now <= baseGoroutines {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("goroutines: %d before the server, %d with %d sessions open, %d after Shutdown", baseGoroutines, during, readers+1, now)
	if now > baseGoroutines {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("%d goroutines after Shutdown, %d before the server started:\n%s", now, baseGoroutines, buf[:n])
	}
}
