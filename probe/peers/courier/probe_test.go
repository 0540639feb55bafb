package courier

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/peers/peertest"
)

// courier is start.sh's server. It writes the fixture accounts of
// fixtures/mailboxes/users.yaml into Courier's userdb (login names as in
// users.yaml).
var courier = peertest.Server{Dir: "courier", Name: "Courier", Logs: []string{"pop3d.log", "authdaemond.log"}}

// probeTimeout bounds one probe run (the probe's own --timeout is a
// little shorter so that it writes its report first). Against Courier
// 1.0.16 the readonly run takes about 90 s: courierpop3login waits 5 s
// before every "-ERR Login failed." (hard-coded), and the suite has about
// fifteen failed logins. The second run, at the same time against its
// own instance, runs the reversible, mutating and disruptive specs only (the readonly
// ones are the first run's), about 60 s.
const probeTimeout = 4 * time.Minute

// disruptiveFilter selects the specs of the second run: all that the
// readonly run leaves out (reversible ones mark mail deleted and undo it).
const disruptiveFilter = "reversible || mutating || disruptive"

// expectedDeviations are the statements the probe must report as
// "deviates" when it judges Courier 1.0.16 (Debian 12 courier-pop,
// start.sh's configuration) by the rfc1939 profile, readonly specs only:
// no more, no fewer. Each was re-checked by hand on the wire (Python
// socket client, plain and STLS, against start.sh instances, 2026-11-25).
var expectedDeviations = map[string]string{
	// --- RFC deviations of Courier 1.0.16
	"RFC1939-5-retr-arg-required":  `"RETR 1x" -> "+OK 259 octets follow." and message 1 (the number is read with trailing garbage ignored)`,
	"RFC1939-7-top-args":           `"TOP 1 -1" -> "+OK headers follow." and the header`,
	"RFC2595-4-stls-inject":        `"STLS\r\nCAPA\r\n" in one write -> "+OK Begin SSL/TLS negotiation now.", then inside TLS the CAPA list comes first, before the reply to NOOP ("-ERR Invalid command."): the plaintext CAPA ran inside TLS`,
	"RFC2595-4-stls-discard-state": `USER alice -> +OK in plaintext, STLS -> +OK, handshake, PASS wonderland -> "+OK logged in.": the USER given before TLS carried over (a derived rule; STLS after USER is outside RFC 1939, but Courier takes it)`,
	// RFC1939-7-pass-needs-user is no longer seen: Courier keeps the
	// USER after a failed PASS (USER alice, PASS wrong -> "-ERR Login
	// failed.", PASS wonderland -> "+OK logged in."), but the spec now
	// fails the PASS of an unknown name so as not to count against the
	// account, and then "USER nosuch-4711", "PASS no-such-password",
	// "PASS wonderland" -> "-ERR Login failed." twice: conformant, and no
	// run sends a wrong password for alice.

	// --- where the rfc1939 profile asks for one of the RFCs' choices
	"2.1.1":                                 `"USER<TAB>alice" -> +OK, PASS -> "+OK logged in." (TAB separates); "USER<TAB><TAB>alice" and "USER  alice" -> +OK (any name gets +OK), PASS -> "-ERR Login failed."; the profile wants one SPACE only`,
	"RFC1939-3-cmd-arg-sep":                 `"LIST<TAB>1" -> "+OK 1 259"`,
	"2.1.2":                                 `"XYZW " + 249 x after login -> "-ERR Invalid command." like "XYZW x"; "USER " + 199993 x (200000 octets) as the first command -> "+OK Password required.": no line limit seen, the profile's is 255`,
	"E0006":                                 `same observation as 2.1.2`,
	"E0007":                                 `same observation as 2.1.2`,
	"V0008":                                 `"USER nosuch..." -> "+OK Password required." (refused only at PASS: "-ERR Login failed."); the profile wants -ERR`,
	"E0002":                                 `CAPA lists no SASL line (start.sh sets POP3AUTH empty, as Debian's /etc/courier/pop3d does); the profile wants PLAIN. ("AUTH PLAIN" still answers "+ ")`,
	"RFC2449-6.3-sasl-cap":                  `no SASL line in CAPA before or after login (the profile lists PLAIN)`,
	"RFC5034-3-mechs-may-change-after-stls": `no SASL before or after STLS (the profile has PLAIN before STLS)`,
	"RFC2449-6.4-resp-codes-cap":            `CAPA has no RESP-CODES (STLS TOP USER LOGIN-DELAY 10 PIPELINING UIDL UTF8 USER IMPLEMENTATION Courier Mail Server); the profile lists it`,
	"RFC3206-6-auth-resp-code-cap":          `CAPA has no AUTH-RESP-CODE; the profile lists it`,
	"RFC2449-6.5-login-delay-cap":           `CAPA lists "LOGIN-DELAY 10" (hard-coded in courierpop3login) before and after login; the profile has none`,
	"RFC2449-6.9-implementation-cap":        `CAPA -> "IMPLEMENTATION Courier Mail Server" (before and after login); the profile names pop3conformance-reference`,
	"RFC2449-9-registry":                    `CAPA lists "UTF8 USER" (RFC 6856, registered), a tag the rfc1939 profile does not name`,
	"V0012":                                 `greeting "+OK Hello there." has no timestamp and "APOP alice <digest>" -> "-ERR Invalid command.": no APOP; the profile has APOP`,
	"RFC1939-7-apop-banner":                 `as V0012: no <...@...> timestamp in "+OK Hello there."`,
	"RFC1939-7-apop-digest":                 `as V0012`,
}

// mayDeviate are statements whose verdict depends on timing: each may be
// reported as deviating or not.
var mayDeviate = map[string]string{
	// courierpop3login reads USER and PASS, then execs courierpop3d: what
	// it read past PASS is lost. "USER alice", "PASS wonderland",
	// "STAT\r\nNOOP\r\n" in three writes at once: 5 of 8 tries got only
	// the USER and PASS replies, 3 of 8 all four. CAPA lists PIPELINING.
	"RFC2449-6.6-pipelining-cap": `commands pipelined after PASS are lost when courierpop3login read them with the PASS (no reply to STAT, LIST, NOOP)`,
}

// expectedDisruptiveDeviations are the deviations of the reversible,
// mutating and disruptive specs (the second run runs those only).
var expectedDisruptiveDeviations = map[string]string{
	// the wrong-digest APOP spec is disruptive; like V0012 in the
	// readonly run: no timestamp, so no digest can be made
	"RFC1939-7-apop-digest":           `greeting "+OK Hello there." has no <...@...> timestamp; the profile has APOP`,
	"2.1.3":                           `alice logged in twice at once: both PASS -> "+OK logged in.", both STAT "+OK 6 329868": no maildrop lock (the profile has an exclusive one; MS-STANXPOP3 2.1.3 allows none)`,
	"RFC1939-4-lock-on-success":       `as 2.1.3 (RFC 1939 section 4: an exclusive-access lock)`,
	"RFC1939-4-lock-fail-err":         `as 2.1.3: the second login gets +OK, not -ERR`,
	"RFC1939-7-pass-locks":            `as 2.1.3`,
	"RFC1939-3-unknown-cmd":           `"NO<NUL>OP" and four NULs -> no reply at all within 10 s, the connection stays open (a later NOOP gets no reply either)`,
	"RFC2449-6.5-login-delay-enforce": `CAPA says "LOGIN-DELAY 10", yet QUIT then USER alice + PASS at once -> "+OK logged in." (a SHOULD: Courier announces the delay and does not enforce it)`,
	"RFC2595-4-stls-handshake":        `STLS -> +OK, then "GET / HTTP/1.1..." -> a TLS alert, then in plaintext "-ERR STARTTLS failed: ... An unexpected TLS packet was received." and "-ERR Invalid command." for each garbage line: the session goes on in plaintext instead of closing`,
}

// expectedObserved are parameters of the report's "observed" object,
// re-checked by hand on the wire (2026-11-25); the comment says how.
var expectedObserved = map[string]any{
	// The first line: "+OK Hello there.", no APOP timestamp.
	"greeting": "Hello there.",
	"capa":     true,
	// "USER " + x... as the first command: 255, 256, 512, 8192, 8193,
	// 65536 and 200000 octets -> "+OK Password required." each, and a
	// QUIT after it -> "+OK Better luck next time." (one line, not cut).
	"max_command_octets":       float64(8192),
	"max_command_octets_bound": "at-least",
	"max_argument_chars":       float64(0),
	// LIST 1 -> "+OK 1 259", RETR 1 sends 259 octets, byte for byte
	// alice/01-short.eml; RETR 1..6 equal the fixture files.
	"exact_sizes": true,
	// CAPA on the plain port; after STLS and after login the same without
	// STLS.
	"capa_before_login": []any{"STLS", "TOP", "USER", "LOGIN-DELAY 10", "PIPELINING", "UIDL", "UTF8 USER", "IMPLEMENTATION Courier Mail Server"},
	"capa_after_stls":   []any{"TOP", "USER", "LOGIN-DELAY 10", "PIPELINING", "UIDL", "UTF8 USER", "IMPLEMENTATION Courier Mail Server"},
	"capa_after_login":  []any{"TOP", "USER", "LOGIN-DELAY 10", "PIPELINING", "UIDL", "UTF8 USER", "IMPLEMENTATION Courier Mail Server"},
	"login_delay":       "10s",
	"implementation":    "Courier Mail Server",
	"sasl":              []any{},
	"stls":              true,
	// "USER alice" on the plain port before STLS -> +OK.
	"plaintext_before_tls": true,
	// "USER<TAB>alice" -> +OK, PASS -> "+OK logged in."; "USER  alice"
	// -> +OK, PASS -> "-ERR Login failed.".
	"tab_separates":            true,
	"multiple_spaces_separate": false,
	"separators":               "mixed",
	// "USER nosuch..." -> "+OK Password required.".
	"unknown_user_reply":      "ok",
	"unknown_user_reply_text": "+OK Password required.",
	// LIST -> 6 scan listings.
	"message_count": float64(6),
	// UIDL -> "1 UID1-<n>" ... "6 UID6-<n>": not decimal.
	"uid_decimal": false,
	"uid.format":  "any",
	// start.sh's self-signed certificate.
	"tls_certificate_subject": "CN=localhost",
}

// expectedMethods are facts the report tells only in the words of
// observation.methods: each key's method must contain the text.
var expectedMethods = map[string]string{
	"exact_sizes": `(listed 259, sent 259`,
}

// expectedAPOP holds after any run: no timestamp in the greeting, and
// "APOP alice <digest>" -> "-ERR Invalid command.".
var expectedAPOP = map[string]any{
	"apop":           false,
	"apop_timestamp": false,
}

// expectedDisruptiveObserved are measured only with --allow-disruptive.
var expectedDisruptiveObserved = map[string]any{
	// alice logged in twice at once: both PASS -> "+OK logged in.".
	"lock":       "none",
	"lock_reply": "+OK logged in.",
}

func TestProbeAgainstCourier(t *testing.T) {
	requireCourier(t)
	if testing.Short() {
		t.Skip("runs the probe against Courier twice (about 95 s); not in -short mode")
	}
	probe := peertest.NewProbe(t, courier, probeTimeout, "--server-name", "localhost", "--profile", "rfc1939")

	probe.CheckBoth(t, peertest.Both{
		Profile:    "rfc1939",
		Deviations: expectedDeviations, Disruptive: expectedDisruptiveDeviations, MayDeviate: mayDeviate,
		Observed: expectedObserved, Methods: expectedMethods, DisruptiveObserved: expectedDisruptiveObserved,
		Always:         expectedAPOP,
		DisruptiveArgs: []string{"--label-filter", disruptiveFilter},
	})
}

// courierPrograms are the files start.sh needs besides commands on PATH.
func courierPrograms() (missing []string) {
	popDirs := []string{"/usr/lib/courier/courier"}
	root := os.Getenv("COURIER_POP_ROOT")
	if root == "" {
		root = "/opt/courier-pop"
	}
	popDirs = append(popDirs, filepath.Join(root, "usr", "lib", "courier", "courier"))
	found := false
	for _, d := range popDirs {
		if fileExists(filepath.Join(d, "courierpop3login")) && fileExists(filepath.Join(d, "courierpop3d")) {
			found = true
		}
	}
	if !found {
		missing = append(missing, "courierpop3login/courierpop3d (courier-pop, installed or unpacked in "+root+")")
	}
	for _, f := range []string{"/usr/lib/courier/courier-authlib/authdaemond", "/usr/lib/courier-authlib/libauthuserdb.so.0"} {
		if !fileExists(f) {
			missing = append(missing, f)
		}
	}
	return append(missing, peertest.MissingCommands("couriertcpd", "couriertls", "makeuserdb", "openssl", "unshare")...)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// requireCourier skips the test when Courier is not installed or the test
// does not run as root (start.sh needs a mount namespace), or fails it
// when the CI variable says this machine must run it.
func requireCourier(t *testing.T) {
	t.Helper()
	missing := courierPrograms()
	if os.Geteuid() != 0 {
		missing = append(missing, "root (start.sh runs Courier in a private mount namespace)")
	}
	peertest.Require(t, "Courier", peertest.Missing(missing, "apt-get install courier-base courier-authdaemon courier-authlib-userdb openssl, and courier-pop or, where another POP3 server package must stay, apt-get download courier-pop && dpkg-deb -x courier-pop_*.deb /opt/courier-pop"))
}
