package harness

import (
	"strings"
	"testing"
)

// TestRedactCommand: a secret goes whatever separates it from the
// keyword, a SPACE or a TAB (legal under the Exchange profiles, 2.1.1),
// and a line without one comes back as it was.
func TestRedactCommand(t *testing.T) {
	for _, tc := range []struct {
		line, want string
		secret     string // "" for a line that holds none
	}{
		{"PASS wonderland\r\n", "PASS <redacted>", "wonderland"},
		{"PASS\twonderland", "PASS <redacted>", "wonderland"},
		{"pass\t\ttwo words", "pass <redacted>", "two words"},
		{"PASS  two words", "PASS <redacted>", "two words"},
		{"PASS", "PASS <redacted>", ""},
		{"APOP alice c4c9334bac560ecc979e58001b3e22fb", "APOP alice <redacted>", "c4c9334bac560ecc979e58001b3e22fb"},
		{"APOP\talice\tc4c9334bac560ecc979e58001b3e22fb", "APOP alice <redacted>", "c4c9334bac560ecc979e58001b3e22fb"},
		{"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=", "AUTH PLAIN <redacted initial response>", "AGFsaWNlAHdvbmRlcmxhbmQ="},
		{"AUTH\tPLAIN\tAGFsaWNlAHdvbmRlcmxhbmQ=", "AUTH PLAIN <redacted initial response>", "AGFsaWNlAHdvbmRlcmxhbmQ="},
		{"AUTH PLAIN", "AUTH PLAIN", ""},
		{"USER alice", "USER alice", ""},
		{"PASSWORD x", "PASSWORD x", ""},
	} {
		got, hid := RedactCommand(tc.line)
		if got != tc.want {
			t.Errorf("RedactCommand(%q) = %q, want %q", tc.line, got, tc.want)
		}
		if tc.secret != "" && (strings.Contains(got, tc.secret) || !hid) {
			t.Errorf("RedactCommand(%q) = %q, %v: the secret %q shows", tc.line, got, hid, tc.secret)
		}
		if tc.want == tc.line && hid {
			t.Errorf("RedactCommand(%q) says it hid something in a line it left as it was", tc.line)
		}
	}
}
