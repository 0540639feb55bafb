package server

import "testing"

func TestSASLPrep(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"alice", "alice", false},
		{"a\u00ADlice", "alice", false},        // soft hyphen maps to nothing
		{"two\u00A0words", "two words", false}, // non-ASCII space becomes SPACE
		{"\u2168", "IX", false},                // NFKC: ROMAN NUMERAL NINE
		{"al\u0007ice", "", true},              // control character
		{"al\uFFFDice", "", true},              // replacement character
		{"user\uE000", "", true},               // private use
	}
	for _, tc := range tests {
		got, err := saslPrep(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("saslPrep(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}
