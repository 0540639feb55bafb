package interop

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

// clientTimeout bounds every client run, so a client that hangs on a
// server bug fails the test instead of the whole CI job.
const clientTimeout = 60 * time.Second

type env struct {
	plain, tls string // listener addresses
	caFile     string // PEM of the server certificate
	control    embed.Control
}

// start runs the reference server with a certificate the clients are told
// to trust, so that verification stays on as real users would have it.
func start(t *testing.T, profileName string) *env {
	t.Helper()
	p, err := profile.Load(profileName)
	if err != nil {
		t.Fatal(err)
	}
	cert, pemData := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	in := embed.StartTest(t, embed.Options{
		Profile:   p,
		Plain:     embed.Loopback,
		TLS:       embed.Loopback,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	return &env{plain: in.Plain, tls: in.TLS, caFile: caFile, control: in.Control}
}

func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// A self-signed leaf is its own CA for the clients' trust store.
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemData
}

// fixtureUser is an account of the fixture mailboxes.
type fixtureUser = maildrop.SeedUser

func fixtureUsers(t *testing.T) map[string]fixtureUser {
	t.Helper()
	users, err := maildrop.ReadSeed(fixtures.Mailboxes())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]fixtureUser{}
	for _, u := range users {
		m[u.Name] = u
	}
	return m
}

// fixtureMessage is a fixture message as the server sends it.
func fixtureMessage(t *testing.T, name string) []byte {
	t.Helper()
	data, err := fs.ReadFile(fixtures.Mailboxes(), name)
	if err != nil {
		t.Fatal(err)
	}
	return maildrop.Normalize(data)
}

func need(t *testing.T, bin string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		// .ci/run installs every client; a missing one on a developer's
		// machine is reported, not hidden as a pass.
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed but CI must run it: %v", bin, err)
		}
		t.Skipf("%s is not installed (apt-get install %s)", bin, bin)
	}
	return path
}

func run(t *testing.T, name string, args []string, environ []string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), environ...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(redactArgs(args), " "), err, stderr.String())
	}
	return out, nil
}

// redactArgs hides the password in curl's -u argument in failure output.
func redactArgs(args []string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if i > 0 && out[i-1] == "-u" {
			user, _, _ := strings.Cut(out[i], ":")
			out[i] = user + ":<redacted>"
		}
	}
	return out
}

type mode struct {
	name string
	// scheme, curlTLS: how curl is told to connect.
	scheme  string
	curlTLS []string
	addr    func(*env) string
}

var modes = []mode{
	{"plain", "pop3", nil, func(e *env) string { return e.plain }},
	{"stls", "pop3", []string{"--ssl-reqd"}, func(e *env) string { return e.plain }},
	{"implicit-tls", "pop3s", nil, func(e *env) string { return e.tls }},
}

// TestCurl lists and retrieves every message of alice and bob with curl,
// and compares what curl saved with the fixture, octet for octet.
func TestCurl(t *testing.T) {
	curl := need(t, "curl")
	users := fixtureUsers(t)
	for _, prof := range allProfiles {
		e := start(t, prof)
		for _, m := range modes {
			for _, uname := range []string{"alice", "bob"} {
				u := users[uname]
				t.Run(prof+"/"+m.name+"/"+uname, func(t *testing.T) {
					base := []string{"--silent", "--show-error", "--max-time", "30", "--cacert", e.caFile, "-u", u.Name + ":" + u.Password}
					base = append(base, m.curlTLS...)
					url := fmt.Sprintf("%s://%s/", m.scheme, m.addr(e))
					out, err := run(t, curl, append(base, url), nil)
					if err != nil {
						t.Fatal(err)
					}
					lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(out), "\r", "")), "\n")
					if len(lines) != len(u.Messages) {
						t.Fatalf("LIST via curl: %d lines, want %d:\n%s", len(lines), len(u.Messages), out)
					}
					for i, name := range u.Messages {
						got, err := run(t, curl, append(base, fmt.Sprintf("%s%d", url, i+1)), nil)
						if err != nil {
							t.Fatal(err)
						}
						want := fixtureMessage(t, name)
						if !bytes.Equal(got, want) {
							t.Errorf("RETR %d (%s) via curl: %d octets, want %d; first difference at %d", i+1, name, len(got), len(want), firstDiff(got, want))
						}
					}
				})
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestFetchmail fetches alice's mail with fetchmail --keep in each mode and
// checks that every fixture message arrived whole and nothing was deleted.
func TestFetchmail(t *testing.T) {
	fetchmail := need(t, "fetchmail")
	users := fixtureUsers(t)
	for _, prof := range allProfiles {
		e := start(t, prof)
		for _, m := range []struct {
			name, extra string
			addr        func(*env) string
		}{
			// sslproto '' stops fetchmail's opportunistic STLS; fetchmail
			// matches the certificate against host names only, never IP
			// SANs, so sslcommonname names the certificate's "localhost".
			{"plain", "sslproto ''", func(e *env) string { return e.plain }},
			{"stls", "sslproto 'TLS1.2+' sslcertck sslcertfile %q sslcommonname localhost", func(e *env) string { return e.plain }},
			{"implicit-tls", "ssl sslcertck sslcertfile %q sslcommonname localhost", func(e *env) string { return e.tls }},
		} {
			for _, uname := range []string{"alice", "bob"} {
				u := users[uname]
				t.Run(prof+"/"+m.name+"/"+uname, func(t *testing.T) {
					dir := t.TempDir()
					outDir := filepath.Join(dir, "out")
					if err := os.Mkdir(outDir, 0o700); err != nil {
						t.Fatal(err)
					}
					mda := filepath.Join(dir, "mda.sh")
					script := "#!/bin/sh\nexec cat > \"$(mktemp " + outDir + "/msg.XXXXXX)\"\n"
					if err := os.WriteFile(mda, []byte(script), 0o700); err != nil {
						t.Fatal(err)
					}
					host, port, _ := net.SplitHostPort(m.addr(e))
					tlsOpts := ""
					if strings.Contains(m.extra, "%q") {
						tlsOpts = fmt.Sprintf(m.extra, e.caFile)
					} else {
						tlsOpts = m.extra
					}
					rc := fmt.Sprintf("set no syslog\npoll %s service %s protocol pop3 auth password timeout 30:\n  user %q there with password %q is localuser here\n  keep fetchall %s\n  mda %q\n",
						host, port, u.Name, u.Password, tlsOpts, mda)
					rcFile := filepath.Join(dir, "fetchmailrc")
					if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
						t.Fatal(err)
					}
					_, err := run(t, fetchmail, []string{"--nodetach", "--fetchmailrc", rcFile, "--idfile", filepath.Join(dir, "ids"), "--pidfile", filepath.Join(dir, "pid")},
						[]string{"HOME=" + dir, "FETCHMAILHOME=" + dir})
					if err != nil {
						t.Fatal(err)
					}
					got, err := filepath.Glob(filepath.Join(outDir, "msg.*"))
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != len(u.Messages) {
						t.Fatalf("fetchmail delivered %d messages, want %d", len(got), len(u.Messages))
					}
					// fetchmail hands the MDA LF line ends and adds a Received
					// header, so compare the fixture's LF form as a suffix.
					var bodies []string
					for _, f := range got {
						b, err := os.ReadFile(f)
						if err != nil {
							t.Fatal(err)
						}
						bodies = append(bodies, string(b))
					}
					sort.Strings(bodies)
					for _, name := range u.Messages {
						want := strings.ReplaceAll(string(fixtureMessage(t, name)), "\r\n", "\n")
						found := false
						for _, b := range bodies {
							if strings.HasSuffix(b, want) || strings.Contains(b, want) {
								found = true
								break
							}
						}
						if !found {
							t.Errorf("message %s did not arrive whole through fetchmail", name)
						}
					}
				})
			}
		}
	}
}
