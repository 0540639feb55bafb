package maildrop

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"gopkg.in/yaml.v3"
)

// seedFile is the format of fixtures/mailboxes/users.yaml.
type seedFile struct {
	Users []struct {
		Name     string   `yaml:"name"`
		Password string   `yaml:"password"`
		Site     string   `yaml:"site"`
		Messages []string `yaml:"messages"`
	} `yaml:"users"`
}

// Seed reads users.yaml and the .eml files it names from fsys (the layout
// of fixtures/mailboxes) and adds the users that the store does not have
// yet, with their messages in the listed order. Bare LF becomes CRLF.
// Seeding is not held to the quota.
func (s *Store) Seed(fsys fs.FS) error {
	data, err := fs.ReadFile(fsys, "users.yaml")
	if err != nil {
		return fmt.Errorf("maildrop: seed: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sf seedFile
	if err := dec.Decode(&sf); err != nil {
		return fmt.Errorf("maildrop: seed: users.yaml: %w", err)
	}
	for _, u := range sf.Users {
		// Read every message before creating the user, so that a missing
		// file leaves no half-seeded mailbox.
		raws := make([][]byte, 0, len(u.Messages))
		for _, p := range u.Messages {
			raw, err := fs.ReadFile(fsys, path.Clean(p))
			if err != nil {
				return fmt.Errorf("maildrop: seed %s: %w", u.Name, err)
			}
			raws = append(raws, Normalize(raw))
		}
		if err := s.seedUser(u.Name, u.Password, u.Site, raws); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) seedUser(name, password, site string, raws [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, err := s.addUserLocked(name, password, site)
	if errors.Is(err, ErrUserExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildrop: seed: %w", err)
	}
	now := s.now()
	for _, raw := range raws {
		if _, err := s.deliverLocked(mb, raw, now); err != nil {
			return fmt.Errorf("maildrop: seed %s: %w", name, err)
		}
	}
	return nil
}
