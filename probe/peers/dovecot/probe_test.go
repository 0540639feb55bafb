package dovecot

import (
	"os"
	"testing"
	"time"

	"github.com/pop3conformance/pop3conformance/probe/peers/peertest"
)

// dovecot is start.sh's server. It puts the fixture accounts of
// fixtures/mailboxes/users.yaml into Dovecot's passwd-file.
var dovecot = peertest.Server{Dir: "dovecot", Name: "Dovecot", Logs: []string{"dovecot.log"}}

// probeTimeout bounds one probe run (the probe's own --timeout is a
// little shorter so that it writes its report before it is killed). One
// run takes about 100 s against Dovecot 2.3.19.1: Dovecot waits 2 s
// (auth_failure_delay) on every failed login, and the suite fails logins
// on purpose.
const probeTimeout = 5 * time.Minute

// expectedExchange2010Deviations are the statements the probe must report
// as "deviates" when it judges Dovecot 2.3.19.1 (Debian 12, start.sh's
// configuration) by the exchange2010 profile, readonly, reversible and
// disruptive specs: no more, no fewer. Each reason was re-checked by hand
// on the wire (Python socket client over STLS against a start.sh
// instance, 2026-11-25 and 2026-12-06). The first group are Exchange
// behaviours Dovecot does not share; the second are the RFC deviations of
// expected-deviations.yaml, which Dovecot shows under any profile.
// RFC1939-3-cmd-arg-sep of expected-deviations.yaml is not here:
// exchange2010 takes any run of SPACEs and TABs as separator, so the rule
// about a single SPACE does not apply to it.
//
// Dovecot closes after three bad commands before login (C0005). The
// probe measures that before the specs and keeps every other spec within
// it, so RFC1939-3-wrong-state-cmd and RFC2449-3-single-line-syntax, which
// used to read EOF after that close, are conformant: by hand "STAT",
// "LIST", "LIST 1" -> "-ERR Unknown command." each, and a fresh session
// for the rest.
//
// V0002 (the unauthenticated idle timer: Dovecot's is 180 s, Exchange's
// 60 s) is not observable without --slow, so it is "not-run" here.
var expectedExchange2010Deviations = map[string]string{
	// --- Exchange behaviours Dovecot does not share
	"2.1.1": `"USER<TAB>alice" -> "-ERR Unknown command."; "USER  alice" (two SPACEs) -> +OK, then PASS wonderland -> "-ERR [AUTH] Authentication failed." (exchange2010 separates on SPACE or TAB runs)`,
	"2.1.2": `a 513-octet command is taken (profile limit 512): "USER " + 506 x -> +OK before login; "XYZW " + 506 x after login -> "-ERR Unknown command: XYZW" like a short one`,
	"E0006": `same observation as 2.1.2: Dovecot's limit is 1031 octets before login and 2048 after, not Exchange 2010's 512`,
	"E0007": `same observation as 2.1.2 (E0007 is the same command limit measured against RFC 2449's 255 octets)`,
	"2.1.4": `STAT -> "+OK 6 329868", the exact CRLF octet count; Exchange's default rounds each message up to 1 KiB blocks (333824)`,
	"2.1.5": `LIST 1 -> "+OK 1 259" and the scan listing "1 259": exact sizes, not the 1024 of a storage block`,
	"C0001": `"RETR " + 505 x (512 octets with CRLF) after login -> "-ERR Invalid message number: xxx..." of 536 octets: Dovecot echoes the argument past Exchange's 512-octet response limit`,
	"E0002": `CAPA lists "SASL PLAIN LOGIN", no NTLM; "AUTH NTLM" -> "-ERR [AUTH] Unsupported authentication mechanism."`,
	"C0005": `before login "XYZW" three times -> three "-ERR Unknown command.", then any command (even QUIT) -> "-ERR Too many invalid bad commands." and the close; exchange2010 never closes`,
	"C0007": `UIDL -> "1 000000016b0745d0" ...: pop3_uidl_format %08Xu%08Xv (hex UID + UIDVALIDITY), not decimal`,
	// exchange2010 lists only TOP, UIDL, SASL, USER and STLS: no Exchange
	// capture shows RESP-CODES or PIPELINING.
	"RFC2449-6.4-resp-codes-cap": `CAPA before login (after STLS) -> CAPA TOP UIDL RESP-CODES PIPELINING AUTH-RESP-CODE USER SASL PLAIN LOGIN: RESP-CODES listed, exchange2010 lists none`,
	"RFC2449-6.6-pipelining-cap": `same CAPA: PIPELINING listed, exchange2010 does not list it`,

	// --- RFC deviations of expected-deviations.yaml
	"RFC1939-3-unknown-cmd":            `"USER alice<NUL>x" -> +OK, then PASS wonderland -> "+OK Logged in." (a NUL ends the name)`,
	"RFC1939-7-user-after-fail":        `bare "USER" -> "+OK" instead of -ERR`,
	"RFC1939-7-pass-needs-user":        `bare "USER" -> "+OK", then PASS wonderland -> "-ERR [AUTH] Authentication failed."`,
	"RFC3206-6-auth-resp-code-cap":     `bare "USER" -> "+OK" where a plain -ERR without [AUTH] is wanted`,
	"RFC2449-5-capa-auth-caps-in-both": `CAPA after login -> CAPA TOP UIDL RESP-CODES PIPELINING AUTH-RESP-CODE: USER and SASL, listed before login, are gone`,
	"RFC2449-6.2-user-cap":             `USER missing from CAPA after login (as above)`,
	"RFC2449-6.3-sasl-cap":             `SASL missing from CAPA after login (as above)`,
	"RFC5034-3-sasl-cap-stays":         `AUTH PLAIN (alice) -> "+OK Logged in.", then CAPA lists no SASL`,
	"RFC2449-9-registry":               `CAPA lists "CAPA", which is neither an IANA-registered tag nor an X- tag`,
	"RFC2595-4-stls-discard-state":     `"USER alice" in plaintext, STLS, handshake, "PASS wonderland" -> "+OK Logged in." (the USER survived STLS)`,
	"RFC5034-4-saslprep":               `AUTH PLAIN with authzid "a<U+00AD>lice" (SOFT HYPHEN, mapped to nothing by SASLprep) -> "-ERR [AUTH] Authentication failed."`,
	"RFC2449-4-resp-512":               `after login "RETR " + 505 x, "LIST " + 505 x and (reversible) "DELE " + 505 x, 512 octets each -> "-ERR Invalid message number: xxx..." of 536 octets: the echo exceeds RFC 2449's 512 octets`,
}

// expectedObserved is the report's "observed" object for Dovecot 2.3.19.1
// with start.sh's configuration, probed over STLS as alice. Every value
// was re-checked by hand on the wire (Python socket client, 2026-11-25);
// the comment says how.
var expectedObserved = map[string]any{
	// The first line after connecting: "+OK Dovecot (Debian) ready.", no
	// <...@...> timestamp.
	"greeting_line":  "+OK Dovecot (Debian) ready.",
	"greeting":       "Dovecot (Debian) ready.",
	"apop_timestamp": false,
	// No " [<base64 name>]" at the greeting's end.
	"greeting_backend": false,
	// "APOP alice <32 zeros>" -> "-ERR APOP not enabled."
	"apop": false,
	// CAPA on the plain port, before login.
	"capa":              true,
	"capa_before_login": []any{"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "USER", "SASL PLAIN LOGIN"},
	// CAPA after STLS: the same without STLS.
	"capa_after_stls": []any{"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", "SASL PLAIN LOGIN"},
	// CAPA after USER alice / PASS wonderland: USER and SASL are gone.
	"capa_after_login": []any{"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"},
	// The tags besides SASL, STLS, IMPLEMENTATION, LOGIN-DELAY, EXPIRE.
	"capabilities": []any{"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER"},
	// No IMPLEMENTATION line in any CAPA above.
	"implementation": "",
	// "SASL PLAIN LOGIN" in CAPA; "AUTH" alone lists PLAIN, LOGIN.
	"sasl": []any{"PLAIN", "LOGIN"},
	"stls": true,
	// "USER alice" on the plain port before STLS -> +OK (Dovecot counts
	// 127.0.0.1 to 127.0.0.1 as secured).
	"plaintext_before_tls": true,
	// "USER<TAB>alice" -> "-ERR Unknown command."; "USER  alice" -> +OK,
	// then "PASS wonderland" -> "-ERR [AUTH] Authentication failed.".
	"tab_separates":            false,
	"multiple_spaces_separate": false,
	"separators":               "single-space",
	// Command length before login. By hand: "USER " + 1024 x (1031 octets
	// with CRLF) -> +OK, 1032 -> "-ERR Input buffer full, aborting" and
	// the close; the same 1031/1032 for "XYZW " + filler, for "XYZW" with
	// ten 100-octet arguments and for "NOOP ab ab ...". Dovecot's login
	// process bounds the text after the keyword (1024 octets), so the
	// probe measures with a four-letter keyword like every POP3 command,
	// and there is no per-argument limit (fixtures/profiles/dovecot.yaml:
	// max_command_octets 1031, max_argument_chars 0). Before login no
	// reply proves a line was read whole, and the limit after login is
	// another, so the probe can only say at-most.
	"max_command_octets":       float64(1031),
	"max_command_octets_bound": "at-most",
	"max_argument_chars":       float64(0),
	// After login: "LIST " + zeros + "1" of 2048 octets -> "+OK 1 259"
	// (read whole), 2049 -> "-ERR Input line too long." and the close.
	"max_command_octets_transaction":       float64(2048),
	"max_command_octets_transaction_bound": "exact",
	// Both refusals above are an -ERR and the close.
	"overlong_command": "close",
	// Reply texts, from the lines above: "XYZW" (or any unknown
	// keyword) and "STAT" before login; USER and the successful PASS of
	// alice. (CAPA order: "CAPA ... STLS USER SASL" fits neither order a
	// profile can say, so capa_order is not measured.)
	"replies.unknown_command": "-ERR Unknown command.",
	"replies.wrong_state":     "-ERR Unknown command.",
	"replies.user":            "+OK",
	"replies.pass_ok":         "+OK Logged in.",
	// Before login "XYZW" three times -> "-ERR Unknown command." each,
	// then any fourth command, QUIT too, -> "-ERR Too many invalid bad
	// commands." and the close: three. After login "XYZW" 21 times ->
	// "-ERR Unknown command: XYZW", the 22nd -> "-ERR Too many bad
	// commands." and the close; the probe stops counting at 10, so 0
	// (no close seen).
	"close_after_errors":             float64(3),
	"close_after_errors_transaction": float64(0),
	// "USER nosuch..." -> "+OK".
	"unknown_user_reply":      "ok",
	"unknown_user_reply_text": "+OK",
	// LIST -> 6 scan listings 259 339 21134 307443 434 259, the fixtures'
	// CRLF octet counts (Maildir stores LF); STAT "+OK 6 329868".
	"message_count": float64(6),
	"exact_sizes":   true,
	// UIDL -> "1 000000016b0745d0", "2 000000026b0745d0", ...: hex, the
	// IMAP UID first, so increasing but not decimal.
	"uid_decimal":    false,
	"uid_increasing": true,
	"uid.format":     "any",
	// A second session logs alice in while the first is in TRANSACTION:
	// both "+OK Logged in.", STAT works in both.
	"lock":       "none",
	"lock_reply": "+OK Logged in.",
	// start.sh's self-signed certificate.
	"tls_certificate_subject": "CN=localhost",
}

func TestProbeAgainstDovecot(t *testing.T) {
	requireDovecot(t)
	if testing.Short() {
		t.Skip("runs the probe against Dovecot twice (about 110 s); not in -short mode")
	}
	probe := peertest.NewProbe(t, dovecot, probeTimeout)

	// Both runs at once, each against a Dovecot of its own: readonly,
	// reversible (DELE undone by RSET or a close without QUIT, which
	// Dovecot honours) and disruptive specs; nothing is deleted.
	t.Run("exchange2010", func(t *testing.T) {
		t.Parallel()
		run := probe.Run(t, "--allow-reversible", "--allow-disruptive", "--profile", "exchange2010")
		checkRun(t, run, "exchange2010")
		peertest.CheckDeviations(t, run.Report, expectedExchange2010Deviations, nil)
	})
	t.Run("rfc1939", func(t *testing.T) {
		t.Parallel()
		// Dovecot deviates from rfc1939 too (expected-deviations.yaml
		// and the profile differences), so checkRun wants exit code 1,
		// not 0; 2 would be a usage or connection error.
		run := probe.Run(t, "--allow-reversible", "--allow-disruptive", "--profile", "rfc1939")
		checkRun(t, run, "rfc1939")
		peertest.CheckObserved(t, run.Report, expectedObserved)
		peertest.CheckNoOtherObserved(t, run.Report, expectedObserved, "Dovecot")
	})
}

// requireDovecot skips the test when Dovecot is not installed, or fails it
// when the CI variable says this machine must have it.
func requireDovecot(t *testing.T) {
	t.Helper()
	missing := peertest.MissingCommands("dovecot", "openssl")
	if _, err := os.Stat("/usr/lib/dovecot/pop3"); err != nil {
		missing = append(missing, "/usr/lib/dovecot/pop3")
	}
	peertest.Require(t, "Dovecot", peertest.Missing(missing, "apt-get install dovecot-core dovecot-pop3d openssl"))
}

// checkRun is peertest.CheckRun, and no statement counted as an error,
// and the report finds this server closest to the dovecot profile.
func checkRun(t *testing.T, run peertest.Run, profile string) {
	t.Helper()
	peertest.CheckRun(t, run, profile)
	if n := run.Report.Summary.Counts["error"]; n != 0 {
		t.Errorf("%d statements with verdict error", n)
	}
	if c := run.Report.ClosestProfile; c != "dovecot" {
		t.Errorf("closest profile %q, want dovecot (fixtures/profiles/dovecot.yaml describes this server)", c)
	}
}
