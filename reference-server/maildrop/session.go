package maildrop

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// Maildrop is one session's view of a mailbox: the message list as it was
// at login (C0004), plus the lock when the session took one.
type Maildrop struct {
	store     *Store
	user      string
	exclusive bool
	msgs      []Message

	closeOnce sync.Once
}

// Acquire opens user's maildrop for a session. With exclusive, a second
// Acquire of the same user fails with ErrLocked until Close (RFC 1939 §4);
// without it, any number of sessions share the mailbox (2.1.3). Under a
// retention policy, expired messages are removed first (E0005).
func (s *Store) Acquire(user string, exclusive bool) (*Maildrop, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[canonical(user)]
	if !ok {
		return nil, fmt.Errorf("maildrop: acquire %s: %w", user, ErrNoSuchUser)
	}
	if mb.locked {
		return nil, fmt.Errorf("maildrop: acquire %s: %w", user, ErrLocked)
	}
	if days := s.policy.RetentionDays; days > 0 {
		cutoff := s.now().Add(-time.Duration(days) * 24 * time.Hour)
		for i := 0; i < len(mb.msgs); {
			if !mb.msgs[i].delivered.Before(cutoff) {
				i++
				continue
			}
			uid := mb.msgs[i].uid
			if err := s.removeLocked(mb, i); err != nil {
				// Keep it; a later login tries again.
				s.log.Error("retention: remove failed", "user", mb.name, "uid", uid, "err", err)
				i++
				continue
			}
			s.log.Info("retention: message expired", "user", mb.name, "uid", uid)
		}
	}
	if exclusive {
		mb.locked = true
	}
	return &Maildrop{store: s, user: mb.name, exclusive: exclusive, msgs: listing(mb)}, nil
}

// User is the canonical name of the maildrop's owner.
func (m *Maildrop) User() string { return m.user }

// Messages is the snapshot taken at Acquire, in UID order. The caller must
// not modify it.
func (m *Maildrop) Messages() []Message { return m.msgs }

// Open returns the body of a snapshot message. It fails with ErrRemoved when
// the message was removed from the maildrop since the snapshot.
func (m *Maildrop) Open(uid string) (io.ReadCloser, error) {
	return m.store.open(m.user, uid)
}

// Commit removes the given messages (the UPDATE state). It goes on after a
// failure, so some or none of the messages may remain (V0006); a message
// that is already gone is not an error. Nothing else is ever removed.
func (m *Maildrop) Commit(uids []string) error {
	s := m.store
	var errs []error
	for _, uid := range uids {
		if err := m.removeOne(uid); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Error("update: some messages were not removed", "user", m.user, "err", err)
		return err
	}
	return nil
}

// Remove removes one message at once, outside UPDATE: for a server
// that applies DELE immediately (profile dele_applies). A message
// already gone is not an error.
func (m *Maildrop) Remove(uid string) error { return m.removeOne(uid) }

func (m *Maildrop) removeOne(uid string) error {
	s := m.store
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, ok := s.users[m.user]
	if !ok {
		return fmt.Errorf("maildrop: update %s: %w", m.user, ErrNoSuchUser)
	}
	n, err := strconv.ParseUint(uid, 10, 64)
	if err != nil {
		return fmt.Errorf("maildrop: update %s/%s: %w", m.user, uid, ErrNoSuchMessage)
	}
	i := mb.find(n)
	if i < 0 {
		return nil // removed meanwhile: the goal is reached
	}
	if s.failRemove != nil {
		if err := s.failRemove(m.user, uid); err != nil {
			return fmt.Errorf("maildrop: update %s/%s: %w", m.user, uid, err)
		}
	}
	if err := s.removeLocked(mb, i); err != nil {
		return fmt.Errorf("maildrop: update %s/%s: %w", m.user, uid, err)
	}
	return nil
}

// Close releases the lock, if any. It does not remove anything: a session
// that ends without QUIT never enters UPDATE.
func (m *Maildrop) Close() {
	m.closeOnce.Do(func() {
		if !m.exclusive {
			return
		}
		s := m.store
		s.mu.Lock()
		defer s.mu.Unlock()
		if mb, ok := s.users[m.user]; ok {
			mb.locked = false
		}
	})
}
