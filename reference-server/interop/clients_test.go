package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// The clients below run like curl and fetchmail in interop_test.go: every
// client under every bundled profile, in each mode it supports, for alice
// (six messages) and bob (a password with a space), with each
// authentication it offers. What the client stored is compared with the
// fixture octet for octet after the client's own additions are removed
// (headers it prepends, LF line ends), and the store must still hold every
// message afterwards: every client runs in keep / no-delete mode.

// allProfiles are the bundled profiles every client runs under.
var allProfiles = []string{"exchange2010", "exchange2007", "rfc1939"}

// knownIncompatible lists the client runs that are expected to fail, keyed
// "client/profile/mode/auth", with the reason. An entry is a finding, not a
// pass: the test logs it, and fails when the run unexpectedly works so the
// entry cannot outlive the problem. Keys may use "*" for any mode or auth.
var knownIncompatible = map[string]string{}

func knownReason(key string) (string, bool) {
	if r, ok := knownIncompatible[key]; ok {
		return r, true
	}
	parts := strings.Split(key, "/")
	for k, r := range knownIncompatible {
		kp := strings.Split(k, "/")
		if len(kp) != len(parts) {
			continue
		}
		match := true
		for i := range kp {
			if kp[i] != "*" && kp[i] != parts[i] {
				match = false
				break
			}
		}
		if match {
			return r, true
		}
	}
	return "", false
}

// clientSpec describes one client for runClient.
type clientSpec struct {
	name string
	// modes the client supports, out of plain, stls, implicit-tls; the
	// others are named in the client's test with the reason.
	modes []string
	// auths the client offers: "user" (USER/PASS), "plain" (AUTH PLAIN).
	auths []string
	// fetch retrieves every message of u into dir and returns what the
	// client stored, one entry per message.
	fetch func(t *testing.T, e *env, mode, auth string, u fixtureUser, dir string) ([][]byte, error)
	// added are the header fields the client may put in front of the
	// message; they are removed before the comparison.
	added []string
	// removed are the header fields the client takes out of the message
	// (getmail turns Return-Path into the envelope sender); they are
	// removed from the top of the fixture too.
	removed []string
	// lf: the client stores LF line ends instead of CRLF.
	lf bool
}

func addrOf(e *env, mode string) string {
	if mode == "implicit-tls" {
		return e.tls
	}
	return e.plain
}

// runClient runs c against the reference server under every profile.
func runClient(t *testing.T, c clientSpec) {
	users := fixtureUsers(t)
	for _, prof := range allProfiles {
		e := start(t, prof)
		for _, mode := range c.modes {
			for _, auth := range c.auths {
				for _, uname := range []string{"alice", "bob"} {
					u := users[uname]
					key := c.name + "/" + prof + "/" + mode + "/" + auth
					t.Run(prof+"/"+mode+"/"+auth+"/"+uname, func(t *testing.T) {
						reason, known := knownReason(key)
						err := checkClientRun(t, c, e, mode, auth, u)
						switch {
						case err != nil && known:
							t.Logf("known incompatibility %s: %s\n%v", key, reason, err)
						case err != nil:
							t.Error(err)
						case known:
							t.Errorf("%s is listed as incompatible (%s) but worked: remove it from knownIncompatible", key, reason)
						}
						assertNothingDeleted(t, e, u)
					})
				}
			}
		}
	}
}

func checkClientRun(t *testing.T, c clientSpec, e *env, mode, auth string, u fixtureUser) error {
	t.Helper()
	got, err := c.fetch(t, e, mode, auth, u, t.TempDir())
	if err != nil {
		return err
	}
	if len(got) != len(u.Messages) {
		return fmt.Errorf("%s stored %d messages, want %d", c.name, len(got), len(u.Messages))
	}
	// Match as a multiset: a maildir has no order, and alice holds two
	// identical messages.
	used := make([]bool, len(got))
	var errs []string
	for _, name := range u.Messages {
		want := fixtureMessage(t, name)
		if c.lf {
			want = bytes.ReplaceAll(want, []byte("\r\n"), []byte("\n"))
		}
		want = stripAdded(want, c.removed, c.lf)
		found, best, bestAt := false, -1, -1
		for i, g := range got {
			if used[i] {
				continue
			}
			stripped := stripAdded(g, c.added, c.lf)
			if bytes.Equal(stripped, want) {
				used[i], found = true, true
				break
			}
			if d := firstDiff(stripped, want); d > bestAt {
				best, bestAt = i, d
			}
		}
		if !found {
			detail := ""
			if best >= 0 {
				s := stripAdded(got[best], c.added, c.lf)
				detail = fmt.Sprintf("; closest stored message (%d octets, want %d) differs at octet %d: got %q, want %q",
					len(s), len(want), bestAt, excerpt(s, bestAt), excerpt(want, bestAt))
			}
			errs = append(errs, fmt.Sprintf("%s did not store %s octet for octet%s", c.name, name, detail))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

func excerpt(b []byte, at int) []byte {
	lo, hi := max(at-20, 0), min(at+20, len(b))
	if lo > hi {
		return nil
	}
	return b[lo:hi]
}

// stripAdded removes the header fields named in added (with their
// continuation lines) from the top of msg, as long as they come before the
// fixture's own first field.
func stripAdded(msg []byte, added []string, lf bool) []byte {
	eol := []byte("\r\n")
	if lf {
		eol = []byte("\n")
	}
	for {
		i := bytes.Index(msg, eol)
		if i < 0 {
			return msg
		}
		line := string(msg[:i])
		name, _, ok := strings.Cut(line, ":")
		if !ok || !containsFold(added, name) {
			return msg
		}
		msg = msg[i+len(eol):]
		for len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t') {
			j := bytes.Index(msg, eol)
			if j < 0 {
				return msg
			}
			msg = msg[j+len(eol):]
		}
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// assertNothingDeleted checks that the store still holds every fixture
// message of u: every client ran in keep mode.
func assertNothingDeleted(t *testing.T, e *env, u fixtureUser) {
	t.Helper()
	msgs, err := e.control.UIDs(u.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(u.Messages) {
		t.Fatalf("after the run the store holds %d messages of %s, want %d: the client deleted mail", len(msgs), u.Name, len(u.Messages))
	}
}

// readMaildir returns every message file of a Maildir (new and cur).
func readMaildir(t *testing.T, dir string) [][]byte {
	t.Helper()
	return readGlob(t, filepath.Join(dir, "new", "*"), filepath.Join(dir, "cur", "*"))
}

// readGlob returns the contents of every file the patterns match.
func readGlob(t *testing.T, patterns ...string) [][]byte {
	t.Helper()
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func makeMaildir(t *testing.T, dir string) string {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGetmail fetches with getmail6 (delete = false) into a Maildir.
// getmail6 has no STLS for POP3: SimplePOP3Retriever is plain TCP and
// SimplePOP3SSLRetriever implicit TLS. It logs in with USER/PASS only
// (APOP optional; no SASL for POP3).
func TestGetmail(t *testing.T) {
	getmail := need(t, "getmail")
	runClient(t, clientSpec{
		name:  "getmail",
		modes: []string{"plain", "implicit-tls"},
		auths: []string{"user"},
		// received = false and delivered_to = false; getmail still
		// replaces the message's Return-Path with one of its own, made
		// from the old one ("<unknown>" when there was none).
		added:   []string{"Return-Path"},
		removed: []string{"Return-Path"},
		lf:      true,
		fetch: func(t *testing.T, e *env, mode, auth string, u fixtureUser, dir string) ([][]byte, error) {
			host, port, _ := net.SplitHostPort(addrOf(e, mode))
			retriever := "SimplePOP3Retriever"
			tlsOpts := ""
			if mode == "implicit-tls" {
				retriever = "SimplePOP3SSLRetriever"
				tlsOpts = "ca_certs = " + e.caFile + "\n"
			}
			// An external MDA, as in the fetchmail test: getmail refuses
			// Maildir delivery as root, which CI is.
			outDir := filepath.Join(dir, "out")
			if err := os.Mkdir(outDir, 0o700); err != nil {
				t.Fatal(err)
			}
			mda := writeFile(t, filepath.Join(dir, "mda.sh"), "#!/bin/sh\nexec cat > \"$(mktemp "+outDir+"/msg.XXXXXX)\"\n")
			if err := os.Chmod(mda, 0o700); err != nil {
				t.Fatal(err)
			}
			rc := writeFile(t, filepath.Join(dir, "getmailrc"), fmt.Sprintf(`[retriever]
type = %s
server = %s
port = %s
username = %s
password = %s
timeout = 30
%s
[destination]
type = MDA_external
path = %s
allow_root_commands = true
unixfrom = false

[options]
delete = false
read_all = true
delivered_to = false
received = false
verbose = 0
`, retriever, host, port, u.Name, u.Password, tlsOpts, mda))
			if _, err := run(t, getmail, []string{"--getmaildir", dir, "--rcfile", rc}, []string{"HOME=" + dir}); err != nil {
				return nil, err
			}
			return readGlob(t, filepath.Join(outDir, "msg.*")), nil
		},
	})
}

// TestMpop fetches with mpop --keep into a Maildir, with USER/PASS and
// with AUTH PLAIN, in all three modes.
func TestMpop(t *testing.T) {
	mpop := need(t, "mpop")
	runClient(t, clientSpec{
		name:  "mpop",
		modes: []string{"plain", "stls", "implicit-tls"},
		auths: []string{"user", "plain"},
		added: []string{"Received"},
		lf:    true,
		fetch: func(t *testing.T, e *env, mode, auth string, u fixtureUser, dir string) ([][]byte, error) {
			host, port, _ := net.SplitHostPort(addrOf(e, mode))
			tlsOpts := "tls off\n"
			switch mode {
			case "stls":
				tlsOpts = "tls on\ntls_starttls on\ntls_trust_file " + e.caFile + "\n"
			case "implicit-tls":
				tlsOpts = "tls on\ntls_starttls off\ntls_trust_file " + e.caFile + "\n"
			}
			out := makeMaildir(t, filepath.Join(dir, "Maildir"))
			conf := writeFile(t, filepath.Join(dir, "mpoprc"), fmt.Sprintf(`account default
host %s
port %s
user %s
password "%s"
auth %s
%stimeout 30
keep on
received_header off
uidls_file %s
delivery maildir %s
`, host, port, u.Name, u.Password, auth, tlsOpts, filepath.Join(dir, "uidls"), out))
			if _, err := run(t, mpop, []string{"--file=" + conf, "--keep=on", "--quiet"}, []string{"HOME=" + dir}); err != nil {
				return nil, err
			}
			return readMaildir(t, out), nil
		},
	})
}

// poplibScript retrieves every message with Python's poplib and writes
// each one, CRLF line ends restored, to OUT/N. poplib offers USER/PASS and
// APOP but no AUTH, so only USER/PASS is run.
const poplibScript = `
import poplib, ssl, sys, os
mode, host, port, ca, user, password, out = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
if mode == "implicit-tls":
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=30)
else:
    p = poplib.POP3(host, int(port), timeout=30)
    if mode == "stls":
        p.stls(context=ctx)
p.user(user)
p.pass_(password)
count, _ = p.stat()
_, listing, _ = p.list()
if len(listing) != count:
    sys.exit("LIST has %d lines, STAT says %d" % (len(listing), count))
for n in range(1, count + 1):
    _, lines, _ = p.retr(n)
    with open(os.path.join(out, "%d" % n), "wb") as f:
        f.write(b"".join(l + b"\r\n" for l in lines))
p.quit()
`

// TestPythonPoplib fetches with Python 3's poplib in all three modes.
func TestPythonPoplib(t *testing.T) {
	python := need(t, "python3")
	runClient(t, clientSpec{
		name:  "poplib",
		modes: []string{"plain", "stls", "implicit-tls"},
		auths: []string{"user"},
		fetch: func(t *testing.T, e *env, mode, auth string, u fixtureUser, dir string) ([][]byte, error) {
			host, port, _ := net.SplitHostPort(addrOf(e, mode))
			if _, err := run(t, python, []string{"-c", poplibScript, mode, host, port, e.caFile, u.Name, u.Password, dir}, nil); err != nil {
				return nil, err
			}
			return readNumbered(t, dir, len(u.Messages))
		},
	})
}

// readNumbered reads files 1..n of dir, in message-number order.
func readNumbered(t *testing.T, dir string, n int) ([][]byte, error) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	if len(entries) != n {
		return nil, fmt.Errorf("the client wrote %d messages, want %d", len(entries), n)
	}
	var out [][]byte
	for i := 1; i <= n; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// netPOP3Script retrieves every message with Perl's Net::POP3 (libnet),
// logging in with USER/PASS (login) or AUTH PLAIN (auth with an
// Authen::SASL object).
const netPOP3Script = `
use strict; use warnings;
use Net::POP3;
my ($mode, $host, $port, $ca, $user, $pass, $auth, $out) = @ARGV;
my %tls = (SSL_ca_file => $ca, SSL_verify_mode => 1, SSL_verifycn_name => $host);
my $pop = Net::POP3->new($host, Port => $port, Timeout => 30,
    ($mode eq "implicit-tls" ? (SSL => 1, %tls) : ()))
    or die "connect: $@\n";
if ($mode eq "stls") { $pop->starttls(%tls) or die "STLS: " . $pop->message . "\n"; }
my $n;
if ($auth eq "plain") {
    require Authen::SASL;
    my $sasl = Authen::SASL->new(mechanism => "PLAIN", callback => { user => $user, pass => $pass, authname => $user });
    $pop->auth($sasl) or die "AUTH PLAIN: " . ($pop->message // "") . "\n";
    ($n) = $pop->popstat;
} else {
    $n = $pop->login($user, $pass);
    defined $n or die "login: " . $pop->message . "\n";
}
my $list = $pop->list or die "LIST: " . $pop->message . "\n";
die "LIST has " . scalar(keys %$list) . " entries, STAT says $n\n" if keys %$list != $n;
for my $i (1 .. $n) {
    my $lines = $pop->get($i) or die "RETR $i: " . $pop->message . "\n";
    open(my $fh, ">:raw", "$out/$i") or die "$out/$i: $!\n";
    # Net::Cmd hands lines over with LF ends on a plain socket but with
    # CRLF under IO::Socket::SSL; store them with CRLF either way.
    print $fh map { (my $l = $_) =~ s/\r?\n\z/\r\n/; $l } @$lines;
    close $fh;
}
$pop->quit;
`

// TestPerlNetPOP3 fetches with Perl's Net::POP3 in all three modes, with
// USER/PASS and AUTH PLAIN.
func TestPerlNetPOP3(t *testing.T) {
	perl := need(t, "perl")
	if _, err := run(t, perl, []string{"-MNet::POP3", "-MIO::Socket::SSL", "-MAuthen::SASL", "-e", "1"}, nil); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Net::POP3 with TLS and SASL is not installed but CI must run it: %v", err)
		}
		t.Skipf("Net::POP3, IO::Socket::SSL or Authen::SASL missing (apt-get install libnet-perl libio-socket-ssl-perl libauthen-sasl-perl): %v", err)
	}
	runClient(t, clientSpec{
		name:  "net-pop3",
		modes: []string{"plain", "stls", "implicit-tls"},
		auths: []string{"user", "plain"},
		fetch: func(t *testing.T, e *env, mode, auth string, u fixtureUser, dir string) ([][]byte, error) {
			host, port, _ := net.SplitHostPort(addrOf(e, mode))
			if _, err := run(t, perl, []string{"-e", netPOP3Script, mode, host, port, e.caFile, u.Name, u.Password, auth, dir}, nil); err != nil {
				return nil, err
			}
			return readNumbered(t, dir, len(u.Messages))
		},
	})
}

// nmapCaps matches the pop3-capabilities line of nmap's normal output.
var nmapCaps = regexp.MustCompile(`(?m)^\|_?\s*pop3-capabilities:\s*(.*)$`)

// TestNmapCapabilities runs nmap's pop3-capabilities script and checks
// that it lists every capability the profile advertises. The script sends
// CAPA only (no login, no messages); it cannot issue STLS, so it runs on
// the plain listener and, through comm.tryssl, on the implicit-TLS one.
func TestNmapCapabilities(t *testing.T) {
	nmap := need(t, "nmap")
	for _, prof := range allProfiles {
		p := loadProfile(t, prof)
		e := start(t, prof)
		for _, mode := range []string{"plain", "implicit-tls"} {
			t.Run(prof+"/"+mode, func(t *testing.T) {
				host, port, _ := net.SplitHostPort(addrOf(e, mode))
				// +script forces it on a port nmap does not know as POP3;
				// -sT -Pn -n: a plain connect, no ping, no DNS.
				out, err := run(t, nmap, []string{"-n", "-Pn", "-sT", "-p", port, "--script", "+pop3-capabilities", host}, nil)
				if err != nil {
					t.Fatal(err)
				}
				m := nmapCaps.FindSubmatch(out)
				if m == nil {
					t.Fatalf("nmap printed no pop3-capabilities line:\n%s", out)
				}
				got := string(m[1])
				want := append([]string(nil), p.Capabilities...)
				if p.STLS && mode == "plain" {
					want = append(want, "STLS")
				}
				for _, c := range want {
					if !regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(strings.Fields(c)[0]) + `(\s|\(|$)`).MatchString(got) {
						t.Errorf("nmap's capability list %q lacks %s", got, c)
					}
				}
				if len(p.SASL) > 0 {
					sasl := regexp.MustCompile(`SASL\(([^)]*)\)`).FindStringSubmatch(got)
					if sasl == nil {
						t.Errorf("nmap's capability list %q lacks SASL(%s)", got, strings.Join(p.SASL, " "))
					} else if strings.Join(strings.Fields(sasl[1]), " ") != strings.Join(p.SASL, " ") {
						t.Errorf("nmap lists SASL(%s), the profile advertises %s", sasl[1], strings.Join(p.SASL, " "))
					}
				}
				if p.Implementation != "" && !strings.Contains(got, "IMPLEMENTATION") {
					t.Errorf("nmap's capability list %q lacks IMPLEMENTATION", got)
				}
				t.Logf("nmap %s: %s", mode, got)
			})
		}
	}
}

func loadProfile(t *testing.T, name string) *profile.Profile {
	t.Helper()
	p, err := profile.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
