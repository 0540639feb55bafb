package maildrop

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// SeedUser is one account of users.yaml (the layout of
// fixtures/mailboxes).
type SeedUser struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
	// PasswordBcrypt and NTHash replace Password for a store that
	// hashes (reference-server hash-password prints them); APOP needs
	// Password itself.
	PasswordBcrypt string `yaml:"password_bcrypt"`
	NTHash         string `yaml:"nt_hash"`
	Site           string `yaml:"site"`
	// Login is "apop" for a mailbox that logs in with APOP only
	// (RFC 1939 section 13); absent: USER/PASS.
	Login string `yaml:"login"`
	// Messages are the .eml files of the maildrop, in order.
	Messages []string `yaml:"messages"`
}

// ReadSeed reads users.yaml from fsys. It is strict, so a misspelt key
// fails instead of seeding an account other than the one meant.
func ReadSeed(fsys fs.FS) ([]SeedUser, error) {
	data, err := fs.ReadFile(fsys, "users.yaml")
	if err != nil {
		return nil, fmt.Errorf("maildrop: seed: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sf struct {
		Users []SeedUser `yaml:"users"`
	}
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("maildrop: seed: users.yaml: %w", err)
	}
	for _, u := range sf.Users {
		if u.Login != "" && u.Login != LoginAPOP {
			return nil, fmt.Errorf("maildrop: seed %s: login %q is not %q (or absent for USER/PASS)", u.Name, u.Login, LoginAPOP)
		}
	}
	return sf.Users, nil
}

// Seed reads users.yaml and the .eml files it names from fsys (the layout
// of fixtures/mailboxes) and adds the users that the store does not have
// yet, with their messages in the listed order. Bare LF becomes CRLF.
// Seeding is not held to the quota.
func (s *Store) Seed(fsys fs.FS) error {
	users, err := ReadSeed(fsys)
	if err != nil {
		return err
	}
	for _, u := range users {
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
		sec, err := s.seedSecrets(u.Name, u.Password, u.PasswordBcrypt, u.NTHash)
		if err != nil {
			return err
		}
		if err := s.seedUser(u.Name, sec, u.Site, u.Login, raws); err != nil {
			return err
		}
	}
	return nil
}

// seedUser creates the user with all its messages at once, so that a crash
// while seeding leaves the user out entirely and the next start seeds it
// again, never a mailbox with some of its fixture messages.
func (s *Store) seedUser(name string, sec secrets, site, login string, raws [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[canonical(name)]; ok {
		return nil
	}
	msgs := make([]seedMessage, len(raws))
	for i, raw := range raws {
		msgs[i] = seedMessage{raw: raw}
	}
	if _, err := s.createUserLocked(name, sec, site, login, msgs, time.Time{}); err != nil {
		return fmt.Errorf("maildrop: seed: %w", err)
	}
	return nil
}

// seedSecrets derives the stored password forms of a seed account. A clear
// password wins; hashes alone are stored as given (then PASS and PLAIN
// check the bcrypt hash, NTLM the NT hash, and APOP cannot work).
func (s *Store) seedSecrets(name, password, bc, nt string) (secrets, error) {
	if password != "" || bc == "" {
		s.mu.Lock()
		known := s.users[canonical(name)] != nil
		s.mu.Unlock()
		if known {
			return secrets{}, nil // seedUser skips it: spare the bcrypt work
		}
		sec, err := s.creds.secretsFor(password)
		if err != nil {
			return sec, fmt.Errorf("maildrop: seed %s: %w", name, err)
		}
		return sec, nil
	}
	if err := validStored(bc, nt); err != nil {
		return secrets{}, fmt.Errorf("maildrop: seed %s: %w", name, err)
	}
	return secrets{Bcrypt: bc, NT: strings.ToLower(nt)}, nil
}
