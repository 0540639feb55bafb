package mailutils

import (
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/peers/peertest"
)

// mailutils is start.sh's server. It writes the fixture accounts of
// fixtures/mailboxes/users.yaml with a domain: Mailutils' virtdomain
// module finds a user only by a login name with a domain, hence
// alice@localhost (start.sh's USER_SUFFIX, which the probe's logins
// append).
var mailutils = peertest.Server{Dir: "mailutils", Name: "pop3d", Logs: []string{"pop3d.log"}, Env: []string{"USER_SUFFIX"}}

// probeTimeout bounds one probe run (the probe's own --timeout is a
// little shorter so that it writes its report first). Against GNU
// Mailutils 3.15 the readonly run takes about 30 s and the disruptive one
// about 45 s; they run at the same time, each against its own pop3d.
const probeTimeout = 3 * time.Minute

// expectedDeviations are the statements the probe must report as
// "deviates" when it judges GNU Mailutils pop3d 3.15 (Debian 12,
// start.sh's configuration) by the rfc1939 profile, readonly specs only:
// no more, no fewer. Each was re-checked by hand on the wire (Python
// socket client, plain and STLS, against start.sh instances, 2026-11-25).
//
// The groups: real RFC deviations of Mailutils; consequences of the
// X-UIDL header Mailutils adds to every message; and differences from
// what the rfc1939 profile (the bundled reference server's settings)
// expects where the RFCs leave the choice to the server.
var expectedDeviations = map[string]string{
	// --- RFC deviations of Mailutils 3.15
	"RFC1939-5-retr-arg-required": `"RETR 1x" -> +OK and message 1 (the number is read with trailing garbage ignored)`,
	"RFC1939-7-top-args":          `"TOP 1 -1" -> +OK and the whole message`,
	"RFC1939-7-top-format":        `TOP 1 3 on a fresh maildrop -> the header, the empty line, then a second empty line before "Hello Alice," (every TOP with n > 0 inserts an empty line)`,
	"RFC1939-7-top-n-exceeds":     `as RFC1939-7-top-format: TOP 1 2 -> header, two empty lines, then the 2 body lines`,
	"V0007":                       `as RFC1939-7-top-format: TOP n>0 has an extra empty line after the header`,
	"RFC2449-9-registry":          `CAPA lists "EXPIRENEVER": RFC 2449's tag is EXPIRE with the argument NEVER ("EXPIRE NEVER")`,

	// --- the X-UIDL header: pop3d adds "X-UIDL: <md5>.<uidvalidity>.<n>"
	// to a message's header the first time it computes its UIDL (by hand:
	// LIST 1 -> 259, UIDL 1, LIST 1 -> 314 in one session) and writes it
	// into the Maildir file at QUIT. From then on each message is its
	// fixture plus that header line (55 octets for alice's messages):
	// LIST 1 -> "+OK 1 314" where alice/01-short.eml has 259 octets, STAT
	// "+OK 6 330198" instead of 329868, and RETR/TOP carry the line. The
	// sizes are the exact octets pop3d then sends, and the stuffing is
	// right ("..one dot at the start" on the wire); the specs compare with
	// the fixture the probe was told the maildrop holds.
	"RFC1939-11-rfc822":            `RETR 1 -> alice/01-short.eml with "X-UIDL: d72a0280332be0fa0721f768fac8eea0.<uidvalidity>.1" before the empty line (314 octets, not 259)`,
	"RFC1939-11-size-crlf":         `LIST 1 -> 314, the fixture with CRLF is 259 (the X-UIDL line: 55 octets)`,
	"RFC1939-3-byte-stuffing":      `RETR 2 -> 15 lines where alice/02-dots.eml has 14 (the X-UIDL line); the dot lines are stuffed right`,
	"RFC1939-4-size-octets":        `LIST 1 -> 314 = the octets RETR 1 sends, but not the fixture's 259`,
	"RFC1939-5-list-all":           `LIST -> 314 394 21189 307498 489 314: each fixture size + 55`,
	"RFC1939-5-list-one":           `LIST 1 -> "+OK 1 314"`,
	"RFC1939-5-scanlisting-format": `as RFC1939-5-list-all`,
	"RFC1939-5-stat-format":        `STAT -> "+OK 6 330198", the fixture sum is 329868 (6 x 55 more)`,
	"RFC1939-5-retr-ok":            `RETR 3 -> line 9 is "X-UIDL: ead01863ff713b2cff69f967890cd97e.<uidvalidity>.3", 21189 octets, the fixture 21134`,
	"RFC1939-7-top-zero":           `TOP 1 0 -> the header with the X-UIDL line and the empty line: right form, 268 octets, the fixture's header 213`,
	"RFC2449-3-multiline-dotstuff": `RETR 1 un-stuffed -> the fixture plus the X-UIDL line`,
	"2.1.4":                        `STAT -> "+OK 6 330198", not the fixture sum 329868 (X-UIDL)`,
	"2.1.5":                        `LIST 1 -> 314, not 259 (X-UIDL)`,

	// --- where the rfc1939 profile asks for one of the RFCs' choices
	"2.1.1":                                 `"USER<TAB><TAB>alice@localhost" -> +OK; pop3d splits the keyword at the first blank (SPACE or TAB), the profile wants one SPACE only`,
	"RFC1939-3-cmd-arg-sep":                 `"LIST<TAB>1" -> "+OK 1 314"; "USER  alice@localhost" (two SPACEs) -> "-ERR Invalid arguments"`,
	"2.1.2":                                 `"USER " + 249 x (256 octets) -> +OK like a short USER; "XYZW " + 249 x after login -> "-ERR Invalid command" like "XYZW x": pop3d takes lines up to 511 octets (USER + 504 x -> +OK, 512 -> the line echoed back then +OK), the profile's limit is 255`,
	"E0006":                                 `same observation as 2.1.2 (limit 511 octets, profile 255)`,
	"E0007":                                 `same observation as 2.1.2`,
	"V0008":                                 `"USER nosuch..." -> "+OK" (unknown names are refused only at PASS: "-ERR [AUTH] Bad login"); the profile wants -ERR`,
	"E0002":                                 `CAPA lists no SASL; "AUTH PLAIN" -> "-ERR Not implemented" (GNU SASL is compiled in but start.sh configures none), the profile wants PLAIN`,
	"RFC2449-6.3-sasl-cap":                  `no SASL line in CAPA before or after login (the profile lists PLAIN)`,
	"RFC5034-3-mechs-may-change-after-stls": `no SASL before or after STLS (the profile has PLAIN before STLS)`,
	"RFC2449-6.9-implementation-cap":        `CAPA after login -> "IMPLEMENTATION GNU Mailutils 3.15" (before login none); the profile names pop3conformance-reference`,

	// V0012, RFC1939-7-apop-digest and RFC1939-7-apop-once are
	// inconclusive: the greeting "+OK POP3 Ready <pid.time@host>" has a
	// timestamp, but APOP alice@localhost with MD5(timestamp +
	// "wonderland") -> "-ERR [AUTH] Bad login". pop3d takes APOP secrets
	// from its APOP database only (none configured; its log says "APOP
	// file /etc/apop.db fails safety check"), and on the wire that
	// refusal cannot be told from a secret other than the password, so
	// the probe decides nothing from it.
}

// expectedDisruptiveDeviations are the deviations besides
// expectedDeviations when reversible, mutating and disruptive specs run
// too (--allow-mutating allows the reversible ones: DELE undone by RSET
// or a close without QUIT).
var expectedDisruptiveDeviations = map[string]string{
	// reversible specs (DELE) of RFC 1939 section 5
	"RFC1939-5-dele-twice":             `DELE 1 -> "+OK Message 1 marked", DELE 1 again -> "+OK Message 1 marked" (RFC 1939 section 5: a second reference to a deleted message is an error)`,
	"RFC1939-5-deleted-not-referenced": `same as RFC1939-5-dele-twice: DELE 1 twice -> +OK twice (LIST 1 and RETR 1 do get "-ERR Message has been deleted")`,
	"RFC1939-3-unknown-cmd":            `"USER alice@localhost<NUL>x" -> +OK, then "PASS wonderland" -> "+OK opened mailbox for alice" (the name is cut at the NUL); "NO<NUL>OP" and four NULs -> "-ERR Invalid command"`,
}

// expectedObserved are parameters of the report's "observed" object,
// re-checked by hand on the wire (2026-11-25); the comment says how.
var expectedObserved = map[string]any{
	// The first line: "+OK POP3 Ready <pid.time@host>", an RFC 1939
	// timestamp whatever APOP's configuration (see expectedAPOP).
	"greeting": "POP3 Ready",
	"capa":     true,
	// The length limit: "USER " + 504 x (511 octets with CRLF) as the
	// first command -> +OK; 512 octets -> the line's first 511 octets
	// echoed back, then "+OK" on the same line (the reply to the cut
	// line), then the rest of the line echoed. USER + 504 x is accepted,
	// so the limit is the line's, not the argument's.
	"max_command_octets":       float64(511),
	"max_command_octets_bound": "exact",
	// After login "LIST " + zeros + "1" of 511 octets -> "+OK 1 259"
	// (pop3d reads the number with strtoul); 512 -> the echo.
	"max_command_octets_transaction":       float64(511),
	"max_command_octets_transaction_bound": "exact",
	"max_argument_chars":                   float64(0),
	// LIST 1 -> "+OK 1 259" and RETR 1 sends 259 octets, as
	// alice/01-short.eml has: the measurement runs before the specs.
	// After a session that ended with QUIT pop3d has written an X-UIDL
	// line into every message (see the X-UIDL group above), and the
	// same exchange gives 314 and 314.
	"exact_sizes": true,
	// CAPA on the plain port; after STLS the same without STLS; after
	// login without STLS, with IMPLEMENTATION.
	"capa_before_login": []any{"TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "EXPIRENEVER", "USER", "STLS"},
	"capa_after_stls":   []any{"TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "EXPIRENEVER", "USER"},
	"capa_after_login":  []any{"TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "EXPIRENEVER", "USER", "IMPLEMENTATION GNU Mailutils 3.15"},
	"sasl":              []any{},
	"stls":              true,
	// "USER alice@localhost" on the plain port before STLS -> +OK.
	"plaintext_before_tls": true,
	// "USER<TAB>alice@localhost" -> +OK, PASS -> +OK opened mailbox;
	// "USER  alice@localhost" -> "-ERR Invalid arguments".
	"tab_separates":            true,
	"multiple_spaces_separate": false,
	"separators":               "mixed",
	// "USER nosuch..." -> "+OK".
	"unknown_user_reply":      "ok",
	"unknown_user_reply_text": "+OK",
	// LIST -> 6 scan listings.
	"message_count": float64(6),
	// UIDL -> "1 d72a0280332be0fa0721f768fac8eea0.<uidvalidity>.1", ...:
	// MD5 of the message, UIDVALIDITY and the IMAP UID, not decimal.
	"uid_decimal": false,
	"uid.format":  "any",
	// start.sh's self-signed certificate.
	"tls_certificate_subject": "CN=localhost",
}

// expectedMethods are facts the report tells only in the words of
// observation.methods: each key's method must contain the text.
var expectedMethods = map[string]string{
	// 512 octets: the first 511 echoed, then the reply to them (an
	// unknown command before login).
	"max_command_octets": `a 512-octet line: the server sent its first 511 octets back, then "-ERR`,
	// Measured before the specs, so before pop3d rewrote the mailbox
	// with X-UIDL lines: LIST 1 -> 259 = RETR 1's octets = the fixture's.
	"exact_sizes": `(listed 259, sent 259; the session ends without QUIT); apart from that, the LIST sizes equal fixture alice's`,
}

// expectedAPOP holds after any run: the greeting offers APOP, but APOP
// alice@localhost with MD5(timestamp + "wonderland") -> "-ERR [AUTH] Bad
// login" (pop3d takes APOP secrets from its APOP database only, and none
// is configured), so the profile key apop, what the server does for the
// account, is false.
var expectedAPOP = map[string]any{
	"apop":           false,
	"apop_timestamp": true,
	"apop_login":     false,
	"apop_reply":     "-ERR [AUTH] Bad login",
}

// expectedDisruptiveObserved are measured only with --allow-disruptive.
var expectedDisruptiveObserved = map[string]any{
	// alice logged in twice: the second PASS -> "-ERR [IN-USE] Mailbox
	// in use" (start.sh's mandatory-locking).
	"lock":       "exclusive",
	"lock_reply": "-ERR [IN-USE] Mailbox in use",
}

func TestProbeAgainstMailutils(t *testing.T) {
	requireMailutils(t)
	if testing.Short() {
		t.Skip("runs the probe against GNU Mailutils pop3d twice (about 50 s); not in -short mode")
	}
	probe := peertest.NewProbe(t, mailutils, probeTimeout, "--server-name", "localhost", "--profile", "rfc1939")

	probe.CheckBoth(t, peertest.Both{
		Profile:    "rfc1939",
		Deviations: expectedDeviations, Disruptive: peertest.Merge(expectedDeviations, expectedDisruptiveDeviations),
		Observed: expectedObserved, Methods: expectedMethods, DisruptiveObserved: expectedDisruptiveObserved,
		Always: expectedAPOP,
	})
}

// requireMailutils skips the test when pop3d is not installed, or fails
// it when the CI variable says this machine must have it.
func requireMailutils(t *testing.T) {
	t.Helper()
	missing := peertest.MissingCommands("pop3d", "openssl")
	peertest.Require(t, "GNU Mailutils pop3d", peertest.Missing(missing, "apt-get install mailutils-pop3d openssl"))
}
