package maildrop

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/pop3conformance/pop3conformance/fixtures"
)

func tmpLeft(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// A full disk while a message or its UID counter is written: the delivery
// fails, nothing already stored changes, no temporary file stays, and the
// UID the failed delivery may have taken is never handed out again.
func TestDeliverWriteFailure(t *testing.T) {
	for _, target := range []string{".eml", "uidnext"} {
		t.Run(target, func(t *testing.T) {
			dir := t.TempDir()
			s := openSeeded(t, dir, Options{})
			before := uids(t, s, "alice")
			s.SetFailWrite(func(path string) error {
				if strings.HasSuffix(path, target) {
					return syscall.ENOSPC
				}
				return nil
			})
			if _, err := s.Deliver("alice", []byte("Subject: x\r\n\r\nlost\r\n")); !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Deliver under a failing write: %v", err)
			}
			s.SetFailWrite(nil)
			if got := uids(t, s, "alice"); len(got) != len(before) {
				t.Fatalf("UIDs %v after a failed delivery, want %v", got, before)
			}
			if left := tmpLeft(t, dir); len(left) > 0 {
				t.Fatalf("temporary files left: %v", left)
			}
			uid, err := s.Deliver("alice", []byte("Subject: y\r\n\r\nkept\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			s2, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			after := uids(t, s2, "alice")
			if len(after) != len(before)+1 || after[len(after)-1] <= before[len(before)-1] {
				t.Fatalf("after reopen %v (new %s), before %v", after, uid, before)
			}
			for i, u := range before {
				if after[i] != u {
					t.Fatalf("after reopen %v, before %v", after, before)
				}
			}
		})
	}
}

// A failing write while a user is created (seed, clone) leaves no user and
// no half-made directory; the next seed creates it whole.
func TestCreateUserWriteFailure(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	s.SetFailWrite(func(path string) error {
		if n++; n == 3 {
			return syscall.EIO
		}
		return nil
	})
	sub, _ := fs.Sub(fixtures.FS, "mailboxes")
	if err := s.Seed(sub); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Seed under a failing write: %v", err)
	}
	if _, ok := s.Lookup("alice"); ok {
		t.Fatal("alice exists after a failed creation")
	}
	if left := tmpLeft(t, dir); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "users"))
	if len(entries) != 0 {
		t.Fatalf("users/ holds %d entries after a failed first creation", len(entries))
	}
	s.SetFailWrite(nil)
	if err := s.Seed(sub); err != nil {
		t.Fatal(err)
	}
	if got := uids(t, s, "alice"); len(got) != 6 || got[0] != 1 {
		t.Fatalf("alice after reseeding: %v", got)
	}
}

// What a crash leaves (a staged user directory, temporary counter and
// message files) is removed at Open and never listed.
func TestOpenCleansCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	openSeeded(t, dir, Options{})
	for _, p := range []string{
		"users/.tmp-erin-123/messages/1.1.eml",
		"users/alice/.tmp-456",
		"users/alice/messages/.tmp-789",
	} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700)
		if err := os.WriteFile(filepath.Join(dir, p), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if left := tmpLeft(t, dir); len(left) > 0 {
		t.Fatalf("left after Open: %v", left)
	}
	if got := len(uids(t, s, "alice")); got != 6 {
		t.Fatalf("alice has %d messages", got)
	}
}

// Hashed storage: account.json holds no clear password unless APOP needs
// it, logins still work, NTLM gets its NT hash, and an older clear-text
// account is rewritten at Open.
func TestHashedCredentials(t *testing.T) {
	dir := t.TempDir()
	openSeeded(t, dir, Options{}) // clear, as older stores wrote
	creds := &Credentials{Hash: true, NTHash: true, Cost: 4}
	s, err := Open(dir, Options{Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("frank", "s3cret pass", ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "frank"} {
		raw, err := os.ReadFile(filepath.Join(dir, "users", u, "account.json"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), `"password"`) || strings.Contains(string(raw), "wonderland") || strings.Contains(string(raw), "s3cret") {
			t.Fatalf("%s account.json keeps the password: %s", u, raw)
		}
		if !strings.Contains(string(raw), `"bcrypt":"$2`) || !strings.Contains(string(raw), `"nt_hash":"`) {
			t.Fatalf("%s account.json lacks a hash: %s", u, raw)
		}
	}
	if !s.CheckPassword("alice", "wonderland") || s.CheckPassword("alice", "Wonderland") || s.CheckPassword("nobody", "x") {
		t.Fatal("CheckPassword against bcrypt")
	}
	if _, ok := s.Secret("alice"); ok {
		t.Fatal("Secret returned a clear password the store must not keep")
	}
	if h, ok := s.NTHash("frank"); !ok || string(h) != string(NTHashOf("s3cret pass")) {
		t.Fatal("NT hash")
	}
	// Keeping the clear secret for APOP.
	s3, err := Open(t.TempDir(), Options{Credentials: &Credentials{Hash: true, Clear: true, Cost: 4}})
	if err != nil {
		t.Fatal(err)
	}
	s3.AddUser("frank", "apop secret", "")
	if sec, ok := s3.Secret("frank"); !ok || sec != "apop secret" || !s3.CheckPassword("frank", "apop secret") {
		t.Fatal("clear secret for APOP")
	}
}

// A seed file may give hashes instead of the password.
func TestSeedHashes(t *testing.T) {
	h, err := HashPassword("hidden", 4)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"users.yaml": {Data: []byte("users:\n  - name: gina\n    password_bcrypt: \"" + h + "\"\n    nt_hash: " + strings.Repeat("ab", 16) + "\n    messages: []\n")}}
	s, err := Open(t.TempDir(), Options{Credentials: &Credentials{Hash: true, NTHash: true, Cost: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(fsys); err != nil {
		t.Fatal(err)
	}
	if !s.CheckPassword("gina", "hidden") {
		t.Fatal("seeded bcrypt hash")
	}
	bad := fstest.MapFS{"users.yaml": {Data: []byte("users:\n  - name: hal\n    password_bcrypt: nothash\n    messages: []\n")}}
	if err := s.Seed(bad); !errors.Is(err, ErrBadHash) {
		t.Fatalf("bad hash: %v", err)
	}
}

// TestLoginCache checks that a repeated good login skips bcrypt while a
// wrong password still fails, and that the cache never accepts a password
// that did not pass bcrypt first.
func TestLoginCache(t *testing.T) {
	creds := Credentials{Hash: true, Cost: 4}
	s, err := Open(t.TempDir(), Options{Credentials: &creds})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser("grace", "hopper", ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		password string
		want     bool
	}{
		{"wrong", false},
		{"hopper", true},
		{"hopper", true}, // from the cache
		{"wrong", false}, // a wrong password after a cached good one
		{"Hopper", false},
		{"hopper", true},
	}
	for i, tc := range tests {
		if got := s.CheckPassword("grace", tc.password); got != tc.want {
			t.Errorf("step %d: CheckPassword(%q) = %v, want %v", i, tc.password, got, tc.want)
		}
	}
	if s.CheckPassword("nobody", "hopper") {
		t.Error("an unknown user passed")
	}
}
