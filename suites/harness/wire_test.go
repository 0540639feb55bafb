package harness

import (
	"net"
	"strings"
	"testing"
)

// TestTranscriptRedaction checks that no secret a client sends reaches the
// transcript, whether sent alone or pipelined in one write.
func TestTranscriptRedaction(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		secret []string
	}{
		{"pass", []string{"PASS s3cret pass\r\n"}, []string{"s3cret"}},
		{"pipelined user and pass", []string{"USER alice\r\nPASS pipelined-secret\r\nSTAT\r\n"}, []string{"pipelined-secret"}},
		{"apop", []string{"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n"}, []string{"c4c9334bac560ecc979e58001b3e22fb"}},
		{"auth initial response", []string{"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"}, []string{"AGFsaWNlAHdvbmRlcmxhbmQ="}},
		{"auth continuation", []string{"AUTH PLAIN\r\n", "AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"}, []string{"AGFsaWNlAHdvbmRlcmxhbmQ="}},
		{"lower-case pass with tab", []string{"pass\tlower-secret\r\n"}, []string{"lower-secret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := server.Read(buf); err != nil {
						return
					}
				}
			}()
			c := newConn(client, newTranscript("test"), false)
			for _, w := range tc.writes {
				if err := c.SendRaw([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			got := c.Transcript().String()
			for _, s := range tc.secret {
				if strings.Contains(got, s) {
					t.Errorf("transcript holds the secret %q:\n%s", s, got)
				}
			}
			if !strings.Contains(got, "redacted") {
				t.Errorf("transcript does not say it redacted anything:\n%s", got)
			}
		})
	}
}

func TestMultiBodyUnstuffs(t *testing.T) {
	m := Multi{Lines: [][]byte{[]byte("..one\r\n"), []byte("two\r\n"), []byte("..\r\n")}}
	if got, want := string(m.Body()), ".one\r\ntwo\r\n.\r\n"; got != want {
		t.Errorf("Body() = %q, want %q", got, want)
	}
}
