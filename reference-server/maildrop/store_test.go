package maildrop

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pop3conformance/pop3conformance/fixtures"
)

func openSeeded(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(fixtures.FS, "mailboxes")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(sub); err != nil {
		t.Fatal(err)
	}
	return s
}

func uids(t *testing.T, s *Store, user string) []uint64 {
	t.Helper()
	msgs, err := s.Messages(user)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		n, err := strconv.ParseUint(m.UID, 10, 64)
		if err != nil {
			t.Fatalf("UID %q is not decimal", m.UID)
		}
		out[i] = n
	}
	return out
}

func TestSeedAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openSeeded(t, dir, Options{})
	if got := fmt.Sprint(s.Users()); got != "[alice bob carol dave erin]" {
		t.Fatalf("users %s", got)
	}
	if acc, ok := s.Lookup("Dave"); !ok || acc.Site != "remote" {
		t.Fatalf("dave: %+v %v", acc, ok)
	}
	if !s.CheckPassword("bob", "two words") || s.CheckPassword("bob", "two") || s.CheckPassword("nobody", "") {
		t.Fatal("CheckPassword")
	}
	before := uids(t, s, "alice")
	if len(before) != 6 {
		t.Fatalf("alice has %d messages", len(before))
	}
	// Identical copies get distinct UIDs (C0009).
	if before[0] == before[5] {
		t.Fatal("duplicate UIDs")
	}
	// Reopen and reseed: nothing changes.
	s2 := openSeeded(t, dir, Options{})
	if fmt.Sprint(uids(t, s2, "alice")) != fmt.Sprint(before) {
		t.Fatal("UIDs changed across reopen")
	}
	want, _ := fs.ReadFile(fixtures.FS, "mailboxes/alice/02-dots.eml")
	got, err := s2.ReadMessage("alice", strconv.FormatUint(before[1], 10))
	if err != nil || string(got) != string(Normalize(want)) {
		t.Fatalf("message changed across reopen: %v", err)
	}
}

func TestUIDsNeverReused(t *testing.T) {
	dir := t.TempDir()
	s := openSeeded(t, dir, Options{})
	all := uids(t, s, "alice")
	last := all[len(all)-1]
	if err := s.Remove("alice", strconv.FormatUint(last, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("alice", strconv.FormatUint(last, 10)); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("second Remove: %v", err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	uid, err := s2.Deliver("alice", []byte("Subject: a\n\nb\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.ParseUint(uid, 10, 64); n <= last {
		t.Fatalf("UID %d after deleting %d", n, last)
	}
	// A leftover temporary file (crash mid-write) is ignored and removed.
	tmp := filepath.Join(dir, "users", "alice", "messages", tmpPrefix+"123")
	os.WriteFile(tmp, []byte("half"), 0o600)
	s3, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatal("temporary file left")
	}
	if got := uids(t, s3, "alice"); len(got) != 6 {
		t.Fatalf("%d messages after reopen", len(got))
	}
}

func TestDeliverNormalizes(t *testing.T) {
	s := openSeeded(t, t.TempDir(), Options{})
	uid, err := s.Deliver("carol", []byte("A: b\n\nline\r\nlast"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.ReadMessage("carol", uid)
	if string(got) != "A: b\r\n\r\nline\r\nlast\r\n" {
		t.Fatalf("%q", got)
	}
	if _, err := s.Deliver("nobody", []byte("x")); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("deliver to nobody: %v", err)
	}
	if err := s.AddUser("alice", "x", ""); !errors.Is(err, ErrUserExists) {
		t.Fatalf("AddUser existing: %v", err)
	}
	if err := s.AddUser("../evil", "x", ""); !errors.Is(err, ErrBadUserName) {
		t.Fatalf("AddUser ../evil: %v", err)
	}
}

func TestCloneUser(t *testing.T) {
	dir := t.TempDir()
	s := openSeeded(t, dir, Options{})
	if err := s.CloneUser("dave", "frank", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := s.CloneUser("alice", "alice2", "pw2"); err != nil {
		t.Fatal(err)
	}
	if acc, _ := s.Lookup("frank"); acc.Site != "remote" {
		t.Fatalf("site not copied: %+v", acc)
	}
	src, _ := s.Messages("alice")
	dst, _ := s.Messages("alice2")
	if len(dst) != len(src) || !s.CheckPassword("alice2", "pw2") {
		t.Fatal("clone incomplete")
	}
	for i := range src {
		a, _ := s.ReadMessage("alice", src[i].UID)
		b, _ := s.ReadMessage("alice2", dst[i].UID)
		if string(a) != string(b) {
			t.Fatalf("message %d differs", i)
		}
	}
	if err := s.CloneUser("nobody", "x", "y"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatal(err)
	}
	s2, _ := Open(dir, Options{})
	if got := uids(t, s2, "alice2"); len(got) != 6 {
		t.Fatal("clone not durable")
	}
}

// The login method of users.yaml ("login: apop", RFC 1939 section 13) is
// kept in account.json, survives a reopen and is copied by CloneUser.
func TestLoginMethod(t *testing.T) {
	dir := t.TempDir()
	s := openSeeded(t, dir, Options{})
	if acc, ok := s.Lookup("erin"); !ok || acc.Login != LoginAPOP {
		t.Fatalf("erin: %+v %v", acc, ok)
	}
	if acc, _ := s.Lookup("alice"); acc.Login != "" {
		t.Fatalf("alice: %+v", acc)
	}
	if got := uids(t, s, "erin"); len(got) != 2 {
		t.Fatalf("erin has %d messages, want 2", len(got))
	}
	if err := s.CloneUser("erin", "erin2", "apop secret"); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"erin", "erin2"} {
		if acc, _ := s2.Lookup(u); acc.Login != LoginAPOP {
			t.Fatalf("%s after reopen: %+v", u, acc)
		}
	}
}

func TestSeedRejectsUnknownLogin(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"users.yaml": {Data: []byte("users:\n  - name: x\n    password: y\n    login: kerberos\n    messages: []\n")}}
	if err := s.Seed(fsys); err == nil || !strings.Contains(err.Error(), "kerberos") {
		t.Fatalf("seed with login kerberos: %v", err)
	}
}

func TestAcquireSnapshotLockCommit(t *testing.T) {
	var fail string
	s := openSeeded(t, t.TempDir(), Options{FailRemove: func(user, uid string) error {
		if uid == fail {
			return errors.New("injected")
		}
		return nil
	}})
	a, err := s.Acquire("alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire("ALICE", true); !errors.Is(err, ErrLocked) {
		t.Fatalf("second exclusive acquire: %v", err)
	}
	a.Close()
	a.Close() // idempotent
	a, err = s.Acquire("alice", false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Acquire("alice", false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	snap := a.Messages()
	s.Deliver("alice", []byte("Subject: late\r\n\r\nx\r\n"))
	if len(a.Messages()) != 6 {
		t.Fatal("snapshot changed")
	}
	if err := s.Remove("alice", snap[0].UID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(snap[0].UID); !errors.Is(err, ErrRemoved) {
		t.Fatalf("open removed: %v", err)
	}
	rc, err := a.Open(snap[1].UID)
	if err != nil {
		t.Fatal(err)
	}
	// A message removed while being read is still read whole.
	if err := s.Remove("alice", snap[1].UID); err != nil {
		t.Fatal(err)
	}
	if data, err := io.ReadAll(rc); err != nil || int64(len(data)) != snap[1].Size {
		t.Fatalf("read after removal: %d octets, %v", len(data), err)
	}
	rc.Close()
	// Commit: already-gone is fine; a failing removal is reported but the
	// others go ahead; unmarked messages stay.
	fail = snap[3].UID
	err = a.Commit([]string{snap[0].UID, snap[2].UID, snap[3].UID, snap[4].UID})
	if err == nil {
		t.Fatal("injected failure not reported")
	}
	left, _ := s.Messages("alice")
	var got []string
	for _, m := range left {
		got = append(got, m.UID)
	}
	if fmt.Sprint(got[:2]) != fmt.Sprint([]string{snap[3].UID, snap[5].UID}) || len(got) != 3 {
		t.Fatalf("left %v", got)
	}
}

func TestQuotaAndRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openSeeded(t, t.TempDir(), Options{Now: func() time.Time { return now }})
	s.SetPolicy(Policy{QuotaOctets: 1000, QuotaWarningPercent: 50, RetentionDays: 30})
	if _, err := s.Deliver("carol", make([]byte, 400)); err != nil {
		t.Fatal(err)
	}
	if n := len(uids(t, s, "carol")); n != 1 {
		t.Fatalf("%d messages below the threshold", n)
	}
	if _, err := s.Deliver("carol", make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	if n := len(uids(t, s, "carol")); n != 3 {
		t.Fatalf("%d messages after crossing 50%%, want the warning too", n)
	}
	if _, err := s.Deliver("carol", make([]byte, 500)); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	now = now.Add(20 * 24 * time.Hour)
	s.Deliver("carol", []byte("x"))
	now = now.Add(15 * 24 * time.Hour)
	md, err := s.Acquire("carol", false)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	if n := len(md.Messages()); n != 1 {
		t.Fatalf("%d messages after retention, want 1", n)
	}
}

func TestSeedErrors(t *testing.T) {
	s, _ := Open(t.TempDir(), Options{})
	bad := fstest.MapFS{"users.yaml": {Data: []byte("users:\n  - name: x\n    password: y\n    messages: [missing.eml]\n")}}
	if err := s.Seed(bad); err == nil {
		t.Fatal("missing message accepted")
	}
	if len(s.Users()) != 0 {
		t.Fatal("half-seeded user left")
	}
	if err := s.Seed(fstest.MapFS{"users.yaml": {Data: []byte("userz: []\n")}}); err == nil {
		t.Fatal("unknown key accepted")
	}
}
