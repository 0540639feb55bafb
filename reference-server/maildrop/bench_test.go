package maildrop

// Micro-benchmarks of the store (issue 6): the snapshot a login takes of a
// big mailbox, a delivery, and opening and reading one message.
// go test -run='^$' -bench=. -benchmem ./reference-server/maildrop

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// benchDir prefers tmpfs: the store fsyncs every file, which is what a
// disk would measure, not the store.
func benchDir(b *testing.B) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "maildrop-bench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return b.TempDir()
}

func benchStore(b *testing.B, messages int) *Store {
	b.Helper()
	s, err := Open(benchDir(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	fsys := fstest.MapFS{"m.eml": {Data: []byte("Subject: x\r\n\r\n" + strings.Repeat("line of text\r\n", 70))}}
	var y strings.Builder
	fmt.Fprintf(&y, "users:\n  - name: big\n    password: pw\n    messages:\n")
	for i := 0; i < messages; i++ {
		y.WriteString("      - m.eml\n")
	}
	fsys["users.yaml"] = &fstest.MapFile{Data: []byte(y.String())}
	if err := s.Seed(fsys); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkAcquire is a login's snapshot of a 100,000-message mailbox
// (what STAT, LIST and UIDL then answer from, without reading bodies).
func BenchmarkAcquire(b *testing.B) {
	s := benchStore(b, 100_000)
	b.ReportAllocs()
	for b.Loop() {
		md, err := s.Acquire("big", false)
		if err != nil {
			b.Fatal(err)
		}
		if len(md.Messages()) != 100_000 {
			b.Fatal("short listing")
		}
		md.Close()
	}
}

func BenchmarkDeliver(b *testing.B) {
	s := benchStore(b, 0)
	msg := []byte("Subject: x\n\n" + strings.Repeat("line of text\n", 300))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Deliver("big", msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenRead(b *testing.B) {
	s := benchStore(b, 1)
	md, err := s.Acquire("big", false)
	if err != nil {
		b.Fatal(err)
	}
	defer md.Close()
	uid := md.Messages()[0].UID
	buf := make([]byte, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		rc, err := md.Open(uid)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkNormalize(b *testing.B) {
	msg := []byte("Subject: x\n\n" + strings.Repeat("line of text\n", 20000))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		Normalize(msg)
	}
}
