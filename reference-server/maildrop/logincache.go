package maildrop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
)

// loginCache remembers which password last passed bcrypt for an account,
// so that a client logging in again and again (every POP3 client polls)
// does not pay bcrypt's deliberate cost each time. A wrong password never
// matches the cache and still costs a full bcrypt comparison, so guessing
// gets no faster. Entries are keyed MACs, not passwords: a per-process
// random key over the stored bcrypt hash and the password, so a changed
// hash invalidates the entry and a memory dump shows no password.
type loginCache struct {
	key []byte
	mu  sync.Mutex
	mac map[string][]byte // canonical user -> MAC
}

func newLoginCache() *loginCache {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		// Without randomness no entry can be trusted; a nil key turns the
		// cache off.
		key = nil
	}
	return &loginCache{key: key, mac: make(map[string][]byte)}
}

func (c *loginCache) sum(stored, password string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(stored))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return m.Sum(nil)
}

// hit reports whether password is the one that last passed for user
// against the stored hash.
func (c *loginCache) hit(user, stored, password string) bool {
	if c == nil || c.key == nil {
		return false
	}
	want := c.sum(stored, password)
	c.mu.Lock()
	got, ok := c.mac[user]
	c.mu.Unlock()
	return ok && hmac.Equal(got, want)
}

// remember records a password that passed bcrypt.
func (c *loginCache) remember(user, stored, password string) {
	if c == nil || c.key == nil {
		return
	}
	mac := c.sum(stored, password)
	c.mu.Lock()
	c.mac[user] = mac
	c.mu.Unlock()
}
