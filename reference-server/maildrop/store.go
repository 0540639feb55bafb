// Package maildrop is the reference server's durable mail store: users,
// their messages and their unique-id counters, kept in a directory.
//
// Layout under the store directory:
//
//	users/<name>/account.json          password and site
//	users/<name>/uidnext               the next unique-id to hand out
//	users/<name>/messages/<uid>.<t>.eml  one file per message, <t> = delivery
//	                                   time in Unix nanoseconds
//
// Every file is written to a temporary name, fsynced and renamed, so a crash
// never leaves a half-written message or counter visible; a new user's
// directory is built under a temporary name and renamed into place whole.
// Open removes whatever temporary files or directories a crash left. The
// UID counter is made durable before the message that uses it, so a UID is
// never handed out twice, even across restarts and after deletions (C0008).
//
// What account.json keeps of a password is Options.Credentials
// (credentials.go): by default the password itself, as the suite's
// fixtures need; the reference-server command stores a bcrypt hash, plus
// the NT hash when NTLM is offered and the clear secret only when APOP is
// (RFC 1939 section 7: APOP's digest needs the shared secret itself).
package maildrop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors callers can test with errors.Is.
var (
	ErrNoSuchUser    = errors.New("maildrop: no such user")
	ErrUserExists    = errors.New("maildrop: user already exists")
	ErrBadUserName   = errors.New("maildrop: invalid user name")
	ErrNoSuchMessage = errors.New("maildrop: no such message")
	// ErrRemoved: the message is in a session's snapshot but was removed
	// from the maildrop since (C0004).
	ErrRemoved = errors.New("maildrop: message was removed")
	// ErrLocked: an exclusive session holds the maildrop (RFC 1939 §4).
	ErrLocked = errors.New("maildrop: maildrop is locked by another session")
	// ErrQuota: the delivery would exceed the mailbox quota (E0003).
	ErrQuota = errors.New("maildrop: mailbox quota exceeded")
)

// Options configure a Store.
type Options struct {
	Logger *slog.Logger
	// Now is the clock for delivery times and retention; nil: time.Now.
	Now func() time.Time
	// FailRemove, when set, is called before each removal made by
	// Maildrop.Commit (the UPDATE state); a non-nil error makes that one
	// removal fail. It exists to test V0006.
	FailRemove func(user, uid string) error
	// FailWrite, when set, is called for every file the store is about to
	// make visible (a message, a UID counter, an account), after its data
	// was written to a temporary file and before the rename; a non-nil
	// error makes that write fail as a full disk would.
	FailWrite func(path string) error
	// Credentials chooses what account.json keeps of a password; nil keeps
	// the password itself (see credentials.go).
	Credentials *Credentials
}

// Policy is the site storage policy (RFC 1939 §8, E0003..E0005). The
// reference server installs its profile's values with SetPolicy.
type Policy struct {
	// QuotaOctets bounds the sum of exact message sizes; 0: no quota.
	QuotaOctets int64
	// QuotaWarningPercent: a delivery that makes the mailbox cross this
	// share of the quota puts one warning message into it; 0: never.
	QuotaWarningPercent int
	// RetentionDays: at login, messages delivered longer ago are removed
	// before the snapshot is taken; 0: keep.
	RetentionDays int
}

// Account is what the server may know about a user besides the password.
type Account struct {
	Name string
	// Site is where the mailbox is homed; "" is the default site.
	Site string
	// Login is how the mailbox logs in when the server offers APOP
	// (RFC 1939 section 13: APOP or USER/PASS, not both): LoginAPOP, or
	// "" for USER/PASS.
	Login string
}

// LoginAPOP marks a mailbox that logs in with APOP only (users.yaml
// "login: apop").
const LoginAPOP = "apop"

// Message is one entry of a listing.
type Message struct {
	UID string
	// Size is the exact RFC 822 size: octets with CRLF line ends, before
	// byte-stuffing.
	Size      int64
	Delivered time.Time
}

// Store is a directory of maildrops. It is safe for concurrent use by
// several sessions of one process; two processes must not share a
// directory.
type Store struct {
	dir   string
	log   *slog.Logger
	now   func() time.Time
	creds Credentials
	// verified spares repeated logins bcrypt's cost (see loginCache).
	verified *loginCache

	mu         sync.Mutex
	failRemove func(user, uid string) error
	failWrite  func(path string) error
	policy     Policy
	users      map[string]*mailbox
}

type mailbox struct {
	name    string
	secrets secrets
	site    string
	login   string // Account.Login
	dir     string
	nextUID uint64
	msgs    []*message // sorted by uid
	locked  bool
}

type message struct {
	uid       uint64
	size      int64
	delivered time.Time
	file      string // base name inside the messages directory
}

type accountFile struct {
	Name string `json:"name"`
	secrets
	Site  string `json:"site,omitempty"`
	Login string `json:"login,omitempty"`
}

// Open opens the store in dir, creating it if needed, and reloads users,
// messages and UID counters.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{
		dir:        dir,
		log:        opts.Logger,
		now:        opts.Now,
		failRemove: opts.FailRemove,
		failWrite:  opts.FailWrite,
		creds:      ClearPasswords,
		verified:   newLoginCache(),
		users:      make(map[string]*mailbox),
	}
	if opts.Credentials != nil {
		s.creds = *opts.Credentials
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(filepath.Join(dir, "users"), 0o700); err != nil {
		return nil, fmt.Errorf("maildrop: create store: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "users"))
	if err != nil {
		return nil, fmt.Errorf("maildrop: read store: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			// A user being created when the process died: it never
			// became visible.
			if err := os.RemoveAll(filepath.Join(dir, "users", e.Name())); err != nil {
				return nil, fmt.Errorf("maildrop: remove interrupted user creation: %w", err)
			}
			continue
		}
		if !e.IsDir() || validName(e.Name()) != nil {
			continue
		}
		mb, err := loadMailbox(filepath.Join(dir, "users", e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			// Older stores wrote account.json last, in place: a directory
			// without it is an interrupted creation and holds nothing of
			// value.
			s.log.Warn("ignoring incomplete user directory", "user", e.Name())
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("maildrop: load user %s: %w", e.Name(), err)
		}
		if err := s.upgradeSecrets(mb); err != nil {
			return nil, fmt.Errorf("maildrop: load user %s: %w", e.Name(), err)
		}
		s.users[mb.name] = mb
	}
	return s, nil
}

// SetFailRemove replaces Options.FailRemove; nil removes the hook.
func (s *Store) SetFailRemove(fail func(user, uid string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRemove = fail
}

// SetFailWrite replaces Options.FailWrite; nil removes the hook.
func (s *Store) SetFailWrite(fail func(path string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failWrite = fail
}

// writeFile is writeFileAtomic under the FailWrite hook; callers hold mu.
func (s *Store) writeFile(name string, data []byte) error {
	return writeFileAtomic(name, data, 0o600, s.failWrite)
}

func loadMailbox(dir string) (*mailbox, error) {
	data, err := os.ReadFile(filepath.Join(dir, "account.json"))
	if err != nil {
		return nil, err
	}
	var acc accountFile
	if err := json.Unmarshal(data, &acc); err != nil {
		return nil, fmt.Errorf("account.json: %w", err)
	}
	mb := &mailbox{name: filepath.Base(dir), secrets: acc.secrets, site: acc.Site, login: acc.Login, dir: dir}
	// Temporary files of a counter or account update that a crash cut
	// short never became visible.
	if tops, err := os.ReadDir(dir); err == nil {
		for _, e := range tops {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	next, err := os.ReadFile(filepath.Join(dir, "uidnext"))
	if err != nil {
		return nil, fmt.Errorf("uid counter: %w", err)
	}
	mb.nextUID, err = strconv.ParseUint(strings.TrimSpace(string(next)), 10, 64)
	if err != nil || mb.nextUID == 0 {
		return nil, fmt.Errorf("uid counter %q: invalid", next)
	}
	mdir := filepath.Join(dir, "messages")
	entries, err := os.ReadDir(mdir)
	if err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			os.Remove(filepath.Join(mdir, name)) // never became visible
			continue
		}
		m, ok := parseMessageName(name)
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", name, err)
		}
		m.size = info.Size()
		mb.msgs = append(mb.msgs, m)
		// Defensive: never hand out a UID that a file already has, even
		// if the counter file were older than the messages.
		if m.uid >= mb.nextUID {
			mb.nextUID = m.uid + 1
		}
	}
	slices.SortFunc(mb.msgs, func(a, b *message) int { return cmpUint(a.uid, b.uid) })
	return mb, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseMessageName(name string) (*message, bool) {
	base, ok := strings.CutSuffix(name, ".eml")
	if !ok {
		return nil, false
	}
	uidStr, tStr, ok := strings.Cut(base, ".")
	if !ok {
		return nil, false
	}
	uid, err1 := strconv.ParseUint(uidStr, 10, 64)
	t, err2 := strconv.ParseInt(tStr, 10, 64)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, false
	}
	return &message{uid: uid, delivered: time.Unix(0, t), file: name}, true
}

// validName keeps user names usable as directory names.
func validName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return fmt.Errorf("%w: %q", ErrBadUserName, name)
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '@', c == '+':
		default:
			return fmt.Errorf("%w: %q", ErrBadUserName, name)
		}
	}
	return nil
}

// canonical folds a login name: mailbox names are case-insensitive, as in
// Exchange.
func canonical(name string) string { return strings.ToLower(name) }

// SetPolicy installs the storage policy (quota, warning, retention).
func (s *Store) SetPolicy(p Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy = p
}

// AddUser creates an empty mailbox. Names are case-insensitive and limited
// to lower-case letters, digits and . _ - @ +.
func (s *Store) AddUser(name, password, site string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.creds.secretsFor(password)
	if err != nil {
		return fmt.Errorf("maildrop: add user %s: %w", name, err)
	}
	_, err = s.createUserLocked(name, sec, site, "", nil, time.Time{})
	return err
}

// seedMessage is a message a new user starts with.
type seedMessage struct {
	raw       []byte
	delivered time.Time
}

// createUserLocked makes a user with the given messages (UIDs from 1 in
// order) all at once: the directory is built under a temporary name and
// renamed into place, so a crash leaves either no user or the whole user.
// An empty delivered time means now.
func (s *Store) createUserLocked(name string, sec secrets, site, login string, msgs []seedMessage, now time.Time) (*mailbox, error) {
	name = canonical(name)
	if err := validName(name); err != nil {
		return nil, err
	}
	if _, ok := s.users[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrUserExists, name)
	}
	mb, err := s.buildUser(name, sec, site, login, msgs, now)
	if err != nil {
		return nil, fmt.Errorf("maildrop: add user %s: %w", name, err)
	}
	s.users[name] = mb
	s.log.Info("user added", "user", name, "site", site, "messages", len(msgs))
	return mb, nil
}

func (s *Store) buildUser(name string, sec secrets, site, login string, msgs []seedMessage, now time.Time) (mb *mailbox, err error) {
	users := filepath.Join(s.dir, "users")
	final := filepath.Join(users, name)
	if _, err := os.Stat(final); err == nil {
		// Left by an older store's interrupted creation (Open ignored it
		// for want of account.json): nothing in it is visible.
		if err := os.RemoveAll(final); err != nil {
			return nil, err
		}
	}
	stage, err := os.MkdirTemp(users, tmpPrefix+name+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(stage)
		}
	}()
	if err := os.Chmod(stage, 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(stage, "messages"), 0o700); err != nil {
		return nil, err
	}
	mb = &mailbox{name: name, secrets: sec, site: site, login: login, dir: stage, nextUID: uint64(len(msgs)) + 1}
	if now.IsZero() {
		now = s.now()
	}
	for i, sm := range msgs {
		d := sm.delivered
		if d.IsZero() {
			d = now
		}
		m := &message{uid: uint64(i) + 1, size: int64(len(sm.raw)), delivered: d}
		m.file = fmt.Sprintf("%d.%d.eml", m.uid, d.UnixNano())
		if err := s.writeFile(mb.path(m), sm.raw); err != nil {
			return nil, fmt.Errorf("message %d: %w", m.uid, err)
		}
		mb.msgs = append(mb.msgs, m)
	}
	if err := s.writeFile(filepath.Join(stage, "uidnext"), []byte(strconv.FormatUint(mb.nextUID, 10)+"\n")); err != nil {
		return nil, fmt.Errorf("uid counter: %w", err)
	}
	if err := s.writeAccount(stage, name, sec, site, login); err != nil {
		return nil, err
	}
	if err := os.Rename(stage, final); err != nil {
		return nil, err
	}
	mb.dir = final
	if err := syncDir(users); err != nil {
		return nil, err
	}
	return mb, nil
}

func (s *Store) writeAccount(dir, name string, sec secrets, site, login string) error {
	data, err := json.Marshal(accountFile{Name: name, secrets: sec, Site: site, Login: login})
	if err != nil {
		return err
	}
	if err := s.writeFile(filepath.Join(dir, "account.json"), data); err != nil {
		return fmt.Errorf("account: %w", err)
	}
	return nil
}

// CloneUser creates dst with copies of src's messages (fresh UIDs in dst,
// delivery times kept), the given password and src's site and login
// method.
func (s *Store) CloneUser(src, dst, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, ok := s.users[canonical(src)]
	if !ok {
		return fmt.Errorf("maildrop: clone %s: %w", src, ErrNoSuchUser)
	}
	// Read first, so a bad source leaves no half-made user behind.
	msgs := make([]seedMessage, len(from.msgs))
	for i, m := range from.msgs {
		data, err := os.ReadFile(from.path(m))
		if err != nil {
			return fmt.Errorf("maildrop: clone %s: read uid %d: %w", src, m.uid, err)
		}
		msgs[i] = seedMessage{raw: data, delivered: m.delivered}
	}
	sec, err := s.creds.secretsFor(password)
	if err != nil {
		return fmt.Errorf("maildrop: clone %s: %w", src, err)
	}
	if _, err := s.createUserLocked(dst, sec, from.site, from.login, msgs, time.Time{}); err != nil {
		return fmt.Errorf("maildrop: clone %s: %w", src, err)
	}
	return nil
}

func (mb *mailbox) path(m *message) string {
	return filepath.Join(mb.dir, "messages", m.file)
}

func (mb *mailbox) usage() int64 {
	var n int64
	for _, m := range mb.msgs {
		n += m.size
	}
	return n
}

func (mb *mailbox) find(uid uint64) int {
	i, ok := slices.BinarySearchFunc(mb.msgs, uid, func(m *message, u uint64) int { return cmpUint(m.uid, u) })
	if !ok {
		return -1
	}
	return i
}

// Normalize returns raw with every bare LF turned into CRLF and a final
// CRLF added when missing: what the store keeps and what RETR sends back,
// so that the exact size is the RFC 822 size with CRLF line ends.
func Normalize(raw []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(raw) + len(raw)/32 + 2)
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
	}
	out := b.Bytes()
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// Deliver stores a message durably and returns its UID. Sessions that are
// already open do not see it (C0004). Under a quota a delivery that does
// not fit fails with ErrQuota; one that crosses the warning threshold is
// followed by a warning message (E0004).
func (s *Store) Deliver(user string, raw []byte) (string, error) {
	raw = Normalize(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[canonical(user)]
	if !ok {
		return "", fmt.Errorf("maildrop: deliver to %s: %w", user, ErrNoSuchUser)
	}
	used := mb.usage()
	size := int64(len(raw))
	if q := s.policy.QuotaOctets; q > 0 && used+size > q {
		return "", fmt.Errorf("maildrop: deliver to %s (%d+%d of %d octets): %w", mb.name, used, size, q, ErrQuota)
	}
	now := s.now()
	uid, err := s.deliverLocked(mb, raw, now)
	if err != nil {
		return "", fmt.Errorf("maildrop: deliver to %s: %w", mb.name, err)
	}
	if q, pct := s.policy.QuotaOctets, s.policy.QuotaWarningPercent; q > 0 && pct > 0 {
		threshold := q * int64(pct) / 100
		if used < threshold && used+size >= threshold {
			// The warning itself is not held to the quota: it must get
			// through precisely when the mailbox is nearly full.
			if _, err := s.deliverLocked(mb, quotaWarning(mb.name, used+size, q, now), now); err != nil {
				s.log.Error("quota warning not delivered", "user", mb.name, "err", err)
			}
		}
	}
	return strconv.FormatUint(uid, 10), nil
}

func quotaWarning(user string, used, quota int64, now time.Time) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Mailbox Quota <postmaster@localhost>\r\n")
	fmt.Fprintf(&b, "To: %s\r\n", user)
	fmt.Fprintf(&b, "Subject: Your mailbox is almost full\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", now.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <quota-%d@localhost>\r\n", now.UnixNano())
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=us-ascii\r\n\r\n")
	fmt.Fprintf(&b, "Your mailbox holds %d of %d octets allowed.\r\n", used, quota)
	fmt.Fprintf(&b, "Please delete messages you no longer need.\r\n")
	return []byte(b.String())
}

// deliverLocked makes the counter durable before the message, so that a
// crash between the two loses at most a UID, never reuses one.
func (s *Store) deliverLocked(mb *mailbox, raw []byte, delivered time.Time) (uint64, error) {
	uid := mb.nextUID
	next := strconv.FormatUint(uid+1, 10) + "\n"
	if err := s.writeFile(filepath.Join(mb.dir, "uidnext"), []byte(next)); err != nil {
		return 0, fmt.Errorf("uid counter: %w", err)
	}
	mb.nextUID = uid + 1
	m := &message{
		uid:       uid,
		size:      int64(len(raw)),
		delivered: delivered,
		file:      fmt.Sprintf("%d.%d.eml", uid, delivered.UnixNano()),
	}
	if err := s.writeFile(mb.path(m), raw); err != nil {
		return 0, fmt.Errorf("message %d: %w", uid, err)
	}
	mb.msgs = append(mb.msgs, m) // uid is the largest so far: order kept
	s.log.Debug("message delivered", "user", mb.name, "uid", uid, "octets", m.size)
	return uid, nil
}

// Remove deletes a message out of band, as another Exchange component
// would; open sessions keep it listed but can no longer read it (C0004).
func (s *Store) Remove(user, uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[canonical(user)]
	if !ok {
		return fmt.Errorf("maildrop: remove from %s: %w", user, ErrNoSuchUser)
	}
	n, err := strconv.ParseUint(uid, 10, 64)
	i := -1
	if err == nil {
		i = mb.find(n)
	}
	if i < 0 {
		return fmt.Errorf("maildrop: remove %s/%s: %w", user, uid, ErrNoSuchMessage)
	}
	if err := s.removeLocked(mb, i); err != nil {
		return fmt.Errorf("maildrop: remove %s/%s: %w", user, uid, err)
	}
	return nil
}

func (s *Store) removeLocked(mb *mailbox, i int) error {
	m := mb.msgs[i]
	if err := os.Remove(mb.path(m)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	mb.msgs = slices.Delete(mb.msgs, i, i+1)
	return syncDir(filepath.Dir(mb.path(m)))
}

// Lookup returns a user's account; ok is false for an unknown name.
func (s *Store) Lookup(user string) (acc Account, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[canonical(user)]
	if !ok {
		return Account{}, false
	}
	return Account{Name: mb.name, Site: mb.site, Login: mb.login}, true
}

// CheckPassword reports whether password is user's (USER/PASS, AUTH PLAIN):
// against the bcrypt hash when the store keeps one, else in constant time
// against the clear password. An unknown name costs about the same.
func (s *Store) CheckPassword(user, password string) bool {
	s.mu.Lock()
	mb, ok := s.users[canonical(user)]
	var sec secrets
	if ok {
		sec = mb.secrets
	}
	s.mu.Unlock()
	key := canonical(user)
	if ok && sec.Bcrypt != "" && s.verified.hit(key, sec.Bcrypt, password) {
		return true
	}
	good := s.creds.check(sec, ok, password)
	if good && sec.Bcrypt != "" {
		s.verified.remember(key, sec.Bcrypt, password)
	}
	return good
}

// Secret returns user's clear password, for APOP (RFC 1939 section 7
// needs the shared secret itself). ok is false for an unknown user and for
// an account whose clear password the store does not keep. Callers must
// never log it.
func (s *Store) Secret(user string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[canonical(user)]
	if !ok || mb.secrets.Password == "" {
		return "", false
	}
	return mb.secrets.Password, true
}

// NTHash returns user's NT hash (MD4 of the UTF-16LE password), which
// NTLM needs instead of the password; ok is false when the store keeps
// neither it nor the clear password. Callers must never log it.
func (s *Store) NTHash(user string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[canonical(user)]
	if !ok {
		return nil, false
	}
	return mb.secrets.ntHash()
}

// Users lists the user names in lexical order.
func (s *Store) Users() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.users))
	for n := range s.users {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Messages lists a mailbox as it is now, in UID order.
func (s *Store) Messages(user string) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[canonical(user)]
	if !ok {
		return nil, fmt.Errorf("maildrop: list %s: %w", user, ErrNoSuchUser)
	}
	return listing(mb), nil
}

func listing(mb *mailbox) []Message {
	out := make([]Message, len(mb.msgs))
	for i, m := range mb.msgs {
		out[i] = Message{UID: strconv.FormatUint(m.uid, 10), Size: m.size, Delivered: m.delivered}
	}
	return out
}

// ReadMessage returns a stored message's bytes (for tests and tools).
func (s *Store) ReadMessage(user, uid string) ([]byte, error) {
	rc, err := s.open(canonical(user), uid)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("maildrop: read %s/%s: %w", user, uid, err)
	}
	return data, nil
}

func (s *Store) open(user, uid string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[user]
	if !ok {
		return nil, fmt.Errorf("maildrop: open %s/%s: %w", user, uid, ErrNoSuchUser)
	}
	n, err := strconv.ParseUint(uid, 10, 64)
	i := -1
	if err == nil {
		i = mb.find(n)
	}
	if i < 0 {
		return nil, fmt.Errorf("maildrop: open %s/%s: %w", user, uid, ErrRemoved)
	}
	// Opened under the lock: a removal after this point unlinks the file
	// but the open descriptor still reads it whole.
	f, err := os.Open(mb.path(mb.msgs[i]))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("maildrop: open %s/%s: %w", user, uid, ErrRemoved)
	}
	if err != nil {
		return nil, fmt.Errorf("maildrop: open %s/%s: %w", user, uid, err)
	}
	return f, nil
}
