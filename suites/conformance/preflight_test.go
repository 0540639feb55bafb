package conformance

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
)

// TestGinkgoPathPreflight runs this suite the way `ginkgo` does, against a
// remote host it cannot judge: a wrong password and a closed port must
// each stop the run before any spec, with one message that names the
// setting to fix, and no spec may fail.
func TestGinkgoPathPreflight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the suite binary")
	}
	bin := filepath.Join(t.TempDir(), "conformance.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the suite: %v\n%s", err, out)
	}
	port := startReference(t)
	closed := closedPort(t)
	tests := []struct {
		name, port, password string
		want                 []string
	}{
		{"wrong password", port, "not-the-password", []string{"cannot log in to", "as alice", "check POP3_USER and POP3_PASSWORD"}},
		{"closed port", closed, "wonderland", []string{"cannot connect to 127.0.0.1:" + closed, "check POP3_HOST, POP3_PORT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-test.run=^TestConformance$", "-ginkgo.no-color")
			cmd.Env = append(os.Environ(), "POP3_HOST=127.0.0.1", "POP3_PORT="+tt.port, "POP3_TLS=none",
				"POP3_USER=alice", "POP3_PASSWORD="+tt.password)
			out, err := cmd.CombinedOutput()
			text := string(out)
			if err == nil {
				t.Fatalf("the run passed against a target it cannot judge:\n%s", text)
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if !strings.Contains(text, "Ran 0 of ") {
				t.Errorf("specs ran; want none")
			}
			// Ginkgo prints one [FAIL] line per failed node: the
			// BeforeSuite's, and no spec's.
			if n := strings.Count(text, "[FAIL]"); n > 1 {
				t.Errorf("%d [FAIL] lines, want the BeforeSuite's only", n)
			}
			if strings.Contains(text, tt.password) && tt.password != "wonderland" {
				t.Errorf("the output shows the password")
			}
			if t.Failed() {
				t.Logf("output:\n%s", text)
			}
		})
	}
}

// startReference serves the fixture mailboxes on a loopback port, as a
// remote host would, and returns the port.
func startReference(t *testing.T) string {
	t.Helper()
	prof, err := profile.Load("rfc1939")
	if err != nil {
		t.Fatal(err)
	}
	in := embed.StartTest(t, embed.Options{Profile: prof, Plain: embed.Loopback})
	_, port, err := net.SplitHostPort(in.Plain)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// closedPort is a loopback port with nothing listening.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return strconv.Itoa(port)
}
