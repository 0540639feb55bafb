package maildrop

import (
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf16"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/md4"
)

// Credentials says what account.json keeps of a password.
//
// Which form a mechanism needs:
//
//   - USER/PASS and AUTH PLAIN receive the password and can check it
//     against a one-way hash: bcrypt.
//   - AUTH NTLM never receives the password; NTLMv2 needs the NT hash
//     (MD4 of the UTF-16LE password, MS-NLMP 3.3.2). The NT hash is
//     password-equivalent for NTLM but does not reveal the password.
//   - APOP needs the shared secret itself (RFC 1939 section 7): the digest
//     is MD5(timestamp + secret), so only the clear password will do.
//
// The reference-server command keeps a bcrypt hash always, the NT hash
// only when its profile offers NTLM, and the clear password only when
// its profile offers APOP (Exchange profiles: bcrypt + NT hash; rfc1939:
// bcrypt + clear). A nil Options.Credentials is ClearPasswords, as the
// suite and the tests use: the fixture accounts are public, any profile
// works against the store, and no bcrypt work slows the hundreds of
// accounts the suite creates.
type Credentials struct {
	// Hash stores a bcrypt hash; CheckPassword uses it. Without Hash the
	// clear password is kept and compared in constant time.
	Hash bool
	// NTHash also stores the NT hash, for AUTH NTLM.
	NTHash bool
	// Clear also keeps the clear password, for APOP.
	Clear bool
	// Cost is the bcrypt cost; 0: bcrypt.DefaultCost.
	Cost int
}

// ClearPasswords keeps the password itself (the default).
var ClearPasswords = Credentials{Clear: true}

// secrets is what an account file holds of a password; unset forms are
// omitted. An account written by an older store has Password only.
type secrets struct {
	Password string `json:"password,omitempty"`
	Bcrypt   string `json:"bcrypt,omitempty"`
	NT       string `json:"nt_hash,omitempty"` // hex
}

// ErrBadHash: a stored hash given to the store is not in the expected form.
var ErrBadHash = errors.New("maildrop: malformed password hash")

func (c Credentials) cost() int {
	if c.Cost == 0 {
		return bcrypt.DefaultCost
	}
	return c.Cost
}

// secretsFor derives the stored forms of password under c.
func (c Credentials) secretsFor(password string) (secrets, error) {
	var sec secrets
	if !c.Hash {
		// Clear is implied: without a hash, the password is the only way to
		// check a login.
		sec.Password = password
		return sec, nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), c.cost())
	if err != nil {
		return sec, fmt.Errorf("bcrypt: %w", err)
	}
	sec.Bcrypt = string(h)
	if c.NTHash {
		sec.NT = hex.EncodeToString(NTHashOf(password))
	}
	if c.Clear {
		sec.Password = password
	}
	return sec, nil
}

// HashPassword returns password's bcrypt hash at cost (0: the default), the
// form account.json keeps in its "bcrypt" field and users.yaml accepts as
// password_bcrypt.
func HashPassword(password string, cost int) (string, error) {
	h, err := Credentials{Hash: true, Cost: cost}.secretsFor(password)
	return h.Bcrypt, err
}

// NTHashOf is MD4 of the UTF-16LE password (MS-NLMP 3.3.1 NTOWFv1, the
// input of NTOWFv2).
func NTHashOf(password string) []byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	h := md4.New()
	h.Write(b)
	return h.Sum(nil)
}

// ntHash returns the NT hash from the stored hash or the clear password.
func (sec secrets) ntHash() ([]byte, bool) {
	if sec.NT != "" {
		b, err := hex.DecodeString(sec.NT)
		return b, err == nil && len(b) == 16
	}
	if sec.Password != "" {
		return NTHashOf(sec.Password), true
	}
	return nil, false
}

// dummyHash makes an unknown user cost what a known one costs.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)
	return h
})

func (c Credentials) check(sec secrets, known bool, password string) bool {
	switch {
	case known && sec.Bcrypt != "":
		return bcrypt.CompareHashAndPassword([]byte(sec.Bcrypt), []byte(password)) == nil
	case known && sec.Password != "":
		return subtle.ConstantTimeCompare([]byte(password), []byte(sec.Password)) == 1
	case c.Hash:
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
	default:
		subtle.ConstantTimeCompare([]byte(password), []byte(password))
	}
	return false
}

// upgradeSecrets rewrites an account whose stored forms differ from what
// the store's Credentials ask for (a clear password from an older store
// that should now be hashed, or a missing NT hash), when the clear
// password is there to derive them from.
func (s *Store) upgradeSecrets(mb *mailbox) error {
	sec := mb.secrets
	c := s.creds
	if !c.Hash || sec.Password == "" {
		return nil
	}
	need := sec.Bcrypt == "" || (c.NTHash && sec.NT == "") || (!c.Clear && sec.Password != "") || (!c.NTHash && sec.NT != "")
	if !need {
		return nil
	}
	next, err := c.secretsFor(sec.Password)
	if err != nil {
		return err
	}
	if err := s.writeAccount(mb.dir, mb.name, next, mb.site, mb.login); err != nil {
		return err
	}
	mb.secrets = next
	s.log.Info("account password forms updated", "user", mb.name, "bcrypt", next.Bcrypt != "", "nt_hash", next.NT != "", "clear", next.Password != "")
	return nil
}

// validStored checks hashes given in a seed file.
func validStored(bc, nt string) error {
	if bc != "" {
		if _, err := bcrypt.Cost([]byte(bc)); err != nil || !strings.HasPrefix(bc, "$2") {
			return fmt.Errorf("%w: password_bcrypt is not a bcrypt hash", ErrBadHash)
		}
	}
	if nt != "" {
		if b, err := hex.DecodeString(nt); err != nil || len(b) != 16 {
			return fmt.Errorf("%w: nt_hash is not 32 hex digits", ErrBadHash)
		}
	}
	return nil
}
