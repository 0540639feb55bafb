package embed

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// ErrQuota is a delivery refused because the mailbox is over its quota
// (E0003).
var ErrQuota = maildrop.ErrQuota

// ErrInjected is the removal failure FailRemovals injects.
var ErrInjected = errors.New("removal failure injected by the suite")

// Control does to a running instance what no POP3 client can: what an
// MTA, an operator or another component of the server would do. It is
// the only way tests and specs reach the server's state.
type Control struct {
	store *maildrop.Store
	seed  []maildrop.SeedUser
	clock *testClock
}

// Deliver stores a message for user, as an MTA would, and returns its
// unique-id. Open sessions do not see it (C0004).
func (c Control) Deliver(user string, raw []byte) (uid string, err error) {
	return c.store.Deliver(user, raw)
}

// UIDs are the unique-ids of user's messages in maildrop order.
func (c Control) UIDs(user string) ([]string, error) {
	msgs, err := c.store.Messages(user)
	if err != nil {
		return nil, err
	}
	uids := make([]string, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	return uids, nil
}

// Remove deletes a message out of band; open sessions keep it listed but
// can no longer read it (C0004).
func (c Control) Remove(user, uid string) error { return c.store.Remove(user, uid) }

// AddUser creates an empty mailbox.
func (c Control) AddUser(name, password string) error {
	return c.store.AddUser(name, password, "")
}

// CopyFixture creates the account name with a copy of the seed account
// fixture's mailbox and its password, and returns the password.
func (c Control) CopyFixture(fixture, name string) (password string, err error) {
	for _, u := range c.seed {
		if u.Name != fixture {
			continue
		}
		if u.Password == "" {
			return "", fmt.Errorf("seed account %s has no clear password to log in with", fixture)
		}
		return u.Password, c.store.CloneUser(fixture, name, u.Password)
	}
	return "", fmt.Errorf("no seed account %q", fixture)
}

// FailRemovals makes the store fail removals of user's messages while
// fail returns true: it is called with the 1-based count of removals
// attempted for user since this call, and the unique-id. One hook holds
// at a time, for the whole store; restore removes it.
func (c Control) FailRemovals(user string, fail func(attempt int, uid string) bool) (restore func()) {
	var attempts atomic.Int64
	c.store.SetFailRemove(func(u, uid string) error {
		if !strings.EqualFold(u, user) {
			return nil
		}
		if fail(int(attempts.Add(1)), uid) {
			return ErrInjected
		}
		return nil
	})
	return func() { c.store.SetFailRemove(nil) }
}

// Advance moves the store's clock forward by d. It fails on an instance
// started without Options.Clock, which runs on the real clock.
func (c Control) Advance(d time.Duration) error {
	if c.clock == nil {
		return errors.New("the instance runs on the real clock (start it with Options.Clock)")
	}
	c.clock.advance(d)
	return nil
}

// testClock is the store's clock under Options.Clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
