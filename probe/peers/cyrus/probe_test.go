package cyrus

import (
	"os"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/peers/peertest"
)

// cyrus is start.sh's server. It writes the fixture accounts of
// fixtures/mailboxes/users.yaml into its private sasldb. Cyrus logs to
// syslog; master.log is master's own stderr.
var cyrus = peertest.Server{Dir: "cyrus", Name: "Cyrus pop3d", Logs: []string{"master.log"}}

// probeTimeout bounds one probe run (the probe's own --timeout is a
// little shorter so that it writes its report first). Against Cyrus 3.6
// (start.sh sets failedloginpause: 0) the readonly run takes about 25 s
// and the disruptive one about 40 s; they run at the same time, each
// against its own Cyrus.
const probeTimeout = 3 * time.Minute

// cyrusBin is where Debian installs the Cyrus daemons.
const cyrusBin = "/usr/lib/cyrus/bin"

// expectedDeviations are the statements the probe must report as
// "deviates" when it judges Cyrus IMAP 3.6.1 pop3d (Debian 12,
// start.sh's configuration) by the rfc1939 profile, readonly specs only:
// no more, no fewer. Each was re-checked by hand on the wire (Python
// socket/ssl client under STLS, against start.sh instances, 2026-11-25).
var expectedDeviations = map[string]string{
	// --- RFC deviations of Cyrus 3.6.1
	"RFC2449-5-capa-auth-caps-in-both": `CAPA after STLS lists USER; after "USER alice"/"PASS wonderland" -> "+OK Mailbox locked and ready", CAPA lists SASL ... but no USER (RFC 2449 section 5: AUTHORIZATION capabilities are announced in both states)`,
	"RFC2449-6.2-user-cap":             `as RFC2449-5-capa-auth-caps-in-both: no USER in CAPA after login`,
	"RFC5034-3-sasl-cap-stays":         `"AUTH PLAIN <alice>" -> +OK, then CAPA -> EXPIRE NEVER, LOGIN-DELAY 0, TOP, UIDL, PIPELINING, RESP-CODES, AUTH-RESP-CODE, IMPLEMENTATION: no SASL (after a USER/PASS login SASL is listed)`,
	"RFC5034-4-ir-unsupported-mech":    `"AUTH DIGEST-MD5 eA==" -> "+ bm9uY2U9..." (the server's challenge; the initial response is ignored), not -ERR; "AUTH CRAM-MD5 eA==" -> "-ERR [AUTH] authenticating: bad protocol / cancel"`,
	"RFC1939-13-apop-xor-pass":         `SHOULD: "APOP alice <MD5(timestamp+wonderland)>" -> "+OK Mailbox locked and ready" and USER alice/PASS wonderland -> +OK too (SASL auxprop keeps the plaintext secret, so APOP works for every account)`,

	// --- where the rfc1939 profile asks for one of the RFCs' choices
	"2.1.1":                                 `"USER<TAB><TAB>alice" -> "+OK Name is a valid mailbox": any run of SPACE/TAB separates; the profile wants one SPACE only`,
	"RFC1939-3-cmd-arg-sep":                 `"LIST<TAB>1" -> "+OK 1 259", "LIST  1" -> "+OK 1 259"`,
	"2.1.2":                                 `the profile's limit is 255 octets, Cyrus reads lines of 8191 octets ("XYZW " + 8184 x after login -> "-ERR Unrecognized command" like "XYZW x", so one octet over 255 is not refused); and user names longer than 80 characters are refused: "USER " + 81 x -> "-ERR [AUTH] Invalid user", 80 x -> +OK`,
	"E0006":                                 `same observation as 2.1.2`,
	"E0007":                                 `same observation as 2.1.2`,
	"V0008":                                 `"USER nosuch1234" -> "+OK Name is a valid mailbox" (refused only at PASS: "-ERR [AUTH] Invalid login"); the profile wants -ERR`,
	"RFC2449-6.3-sasl-cap":                  `SASL after STLS and after login: SCRAM-SHA-512-PLUS ... SCRAM-SHA-1, DIGEST-MD5, CRAM-MD5, NTLM, PLAIN, LOGIN (what libsasl2-modules offers); the profile lists PLAIN only`,
	"RFC2449-6.5-login-delay-cap":           `CAPA before login lists "LOGIN-DELAY 0"; the profile lists none`,
	"RFC2449-6.7-expire-cap":                `CAPA before login lists "EXPIRE NEVER"; the profile lists none`,
	"RFC2449-6.9-implementation-cap":        `CAPA lists "IMPLEMENTATION Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5" (before and after login); the profile names pop3conformance-reference`,
	"RFC2595-4-stls-capa-refresh":           `CAPA on the plain port has no USER and "USER alice" -> "-ERR [AUTH] USER command only available under a layer" (allowplaintext: 0, Cyrus' default); the profile allows plaintext logins before STLS`,
	"RFC5034-3-mechs-may-change-after-stls": `SASL before STLS: SCRAM-*, DIGEST-MD5, CRAM-MD5, NTLM, no PLAIN (allowplaintext: 0); the profile has PLAIN before STLS`,
}

// expectedDisruptiveDeviations are the deviations besides
// expectedDeviations when reversible, mutating and disruptive specs run
// too (--allow-mutating allows the reversible ones).
var expectedDisruptiveDeviations = map[string]string{
	// readonly before; their specs fail logins of the account (a wrong
	// password first, for the [AUTH] check; an AUTH PLAIN that may be
	// refused, for SASLprep), which takes --allow-disruptive now
	"RFC5034-4-saslprep":           `SHOULD: AUTH PLAIN with authzid "alice<U+00AD>" (SOFT HYPHEN, mapped to nothing by SASLprep), authcid alice, password wonderland -> "-ERR [AUTH] authenticating: authentication failure"; authzid "alice" -> +OK`,
	"RFC3206-6-auth-resp-code-cap": `AUTH-RESP-CODE listed; "PASS wonderland" with no USER before -> "-ERR [AUTH] Must give USER command": [AUTH] on a sequencing error, not a credentials failure`,
	"RFC1939-3-unknown-cmd":        `"USER bob<NUL>x" -> "+OK Name is a valid mailbox", then "PASS two words" -> "+OK Mailbox locked and ready" (the name is cut at the NUL)`,
	"RFC2595-4-stls-handshake":     `STLS -> "+OK Begin TLS negotiation now", then "GET / HTTP/1.1\r\nHost: pop3\r\n\r\n" -> "-ERR [SYS/PERM] Starttls failed" in plaintext, then three "-ERR Unrecognized command" (the rest of the garbage read as POP3 commands), and the session goes on in plaintext (CAPA answered): the connection is not closed`,
	"RFC1939-4-lock-on-success":    `bob logged in on two connections at once: both PASS -> "+OK Mailbox locked and ready SESSIONID=<...>" (Cyrus pop3d takes no maildrop lock for the session)`,
	"RFC1939-4-lock-fail-err":      `as RFC1939-4-lock-on-success`,
	"RFC1939-7-pass-locks":         `as RFC1939-4-lock-on-success`,
	"2.1.3":                        `as RFC1939-4-lock-on-success: the second PASS -> +OK, the profile expects an exclusive lock`,
}

// expectedObserved are parameters of the report's "observed" object,
// re-checked by hand on the wire (2026-11-25); the comment says how.
var expectedObserved = map[string]any{
	"capa": true,
	// The first line: "+OK localhost Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5
	// server ready <digits.time@localhost>": an RFC 1939 timestamp.
	"greeting": "localhost Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5 server ready",
	// pop3d reads a line into an 8192-octet buffer with prot_fgets, so
	// it takes 8191 octets (CRLF included) as one command and reads the
	// rest of a longer line as another: "LIST " + zeros + "1" of 8192
	// octets after login -> "+OK 1 259", then "-ERR Unrecognized command"
	// for the LF left over, before the NOOP's +OK; before login the same
	// with XPRB and QUIT. (Reasoned from imap/pop3d.c cmdloop; not yet
	// checked on the wire.)
	"max_command_octets":                   float64(8191),
	"max_command_octets_bound":             "exact",
	"max_command_octets_transaction":       float64(8191),
	"max_command_octets_transaction_bound": "exact",
	// "USER " + 80 x -> +OK, 81 x -> "-ERR [AUTH] Invalid user".
	"max_argument_chars": float64(80),
	// LIST -> 259 339 21134 307443 434 259, the fixture's sizes, and RETR
	// returns the fixture's octets (start.sh APPENDs them over IMAP).
	"exact_sizes":   true,
	"message_count": float64(6),
	// CAPA on the plain port; after STLS (PLAIN, LOGIN, the -PLUS
	// variants and USER appear, STLS goes); after login (USER goes).
	"capa_before_login": []any{"SASL SCRAM-SHA-512 SCRAM-SHA-384 SCRAM-SHA-256 SCRAM-SHA-224 SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5 NTLM", "STLS", "EXPIRE NEVER", "LOGIN-DELAY 0", "TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5"},
	"capa_after_stls":   []any{"SASL SCRAM-SHA-512-PLUS SCRAM-SHA-512 SCRAM-SHA-384-PLUS SCRAM-SHA-384 SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-224-PLUS SCRAM-SHA-224 SCRAM-SHA-1-PLUS SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5 NTLM PLAIN LOGIN", "EXPIRE NEVER", "LOGIN-DELAY 0", "TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "USER", "IMPLEMENTATION Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5"},
	"capa_after_login":  []any{"SASL SCRAM-SHA-512-PLUS SCRAM-SHA-512 SCRAM-SHA-384-PLUS SCRAM-SHA-384 SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-224-PLUS SCRAM-SHA-224 SCRAM-SHA-1-PLUS SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5 NTLM PLAIN LOGIN", "EXPIRE NEVER", "LOGIN-DELAY 0", "TOP", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5"},
	"stls":              true,
	"expire":            "NEVER",
	"login_delay":       "0s",
	"implementation":    "Cyrus POP3 3.6.1-Debian-3.6.1-4+deb12u5",
	// "USER alice" on the plain port -> "-ERR [AUTH] USER command only
	// available under a layer".
	"plaintext_before_tls": false,
	// "USER<TAB><TAB>alice" -> +OK and "LIST  1" -> "+OK 1 259".
	"tab_separates":            true,
	"multiple_spaces_separate": true,
	"separators":               "space-or-tab",
	// "USER nosuch1234" -> "+OK Name is a valid mailbox".
	"unknown_user_reply":      "ok",
	"unknown_user_reply_text": "+OK Name is a valid mailbox",
	// UIDL -> "1 <uidvalidity>.1" ... "6 <uidvalidity>.6": UIDVALIDITY
	// and the IMAP UID joined by a dot, not decimal, increasing.
	"uid_decimal":    false,
	"uid.format":     "any",
	"uid_increasing": true,
	// start.sh's self-signed certificate.
	"tls_certificate_subject": "CN=localhost",
}

// expectedAPOP holds after any run: APOP alice with MD5(timestamp +
// "wonderland") -> "+OK Mailbox locked and ready SESSIONID=<...>".
var expectedAPOP = map[string]any{
	"apop":           true,
	"apop_timestamp": true,
	"apop_login":     true,
}

// expectedDisruptiveObserved are measured only with --allow-disruptive.
var expectedDisruptiveObserved = map[string]any{
	// two sessions of one mailbox at once: both PASS -> +OK.
	"lock": "none",
}

func TestProbeAgainstCyrus(t *testing.T) {
	requireCyrus(t)
	if testing.Short() {
		t.Skip("runs the probe against Cyrus pop3d twice (about 45 s); not in -short mode")
	}
	probe := peertest.NewProbe(t, cyrus, probeTimeout, "--server-name", "localhost", "--profile", "rfc1939")

	probe.CheckBoth(t, peertest.Both{
		Profile:    "rfc1939",
		Deviations: expectedDeviations, Disruptive: peertest.Merge(expectedDeviations, expectedDisruptiveDeviations),
		Observed: expectedObserved, DisruptiveObserved: expectedDisruptiveObserved,
		Always: expectedAPOP,
	})
}

// requireCyrus skips the test when Cyrus or the tools start.sh needs are
// not installed, or when it cannot run as root; it fails instead when the
// CI variable says this machine must run it.
func requireCyrus(t *testing.T) {
	t.Helper()
	pop3d := cyrusBin + "/pop3d"
	if _, err := os.Stat(pop3d); err != nil {
		// Unpacked, not installed, where another POP3 server package
		// must stay (see start.sh).
		pop3d = "/opt/cyrus-pop3d" + pop3d
	}
	missing := peertest.MissingCommands(cyrusBin+"/master", pop3d, cyrusBin+"/imapd", "saslpasswd2", "openssl", "python3")
	why := peertest.Missing(missing, "apt-get install cyrus-imapd sasl2-bin openssl python3, and cyrus-pop3d or its files unpacked under /opt/cyrus-pop3d, see start.sh")
	if why == "" && os.Geteuid() != 0 {
		why = "start.sh must run as root (Cyrus master switches to the user cyrus)"
	}
	peertest.Require(t, "Cyrus pop3d", why)
}
