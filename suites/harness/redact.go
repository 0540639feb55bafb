package harness

import "strings"

// Redacted stands where a secret was: in transcripts, failure messages
// and the probe's scrubbed output.
const Redacted = "<redacted>"

// redactedSASL stands for a client line inside an AUTH exchange: every
// one may carry credentials.
const redactedSASL = "<redacted SASL response>"

// RedactCommand is the one reading of a client command line for secrets:
// it returns the line as a transcript or a failure message may show it,
// and whether it hid anything (the password of PASS, the digest of APOP,
// the initial response of AUTH). Words are split at a SPACE or a TAB,
// like the wire guard splits them: the Exchange profiles take a TAB as a
// separator (2.1.1), so a password after a TAB is sent as much as one
// after a SPACE. The keyword keeps its case; a hidden line loses its line
// end, which the caller shows if it is evidence. Lines of an AUTH
// exchange after the command are the caller's to hide: only the
// connection knows it is inside one.
func RedactCommand(line string) (string, bool) {
	kw, rest, _ := cutSep(strings.TrimRight(line, "\r\n"))
	switch strings.ToUpper(kw) {
	case "PASS":
		return kw + " " + Redacted, true
	case "APOP":
		user, _, _ := cutSep(rest)
		return kw + " " + user + " " + Redacted, true
	case "AUTH":
		if mech, ir, _ := cutSep(rest); ir != "" {
			return kw + " " + mech + " <redacted initial response>", true
		}
	}
	return line, false
}

// startsAUTH reports whether a client line opens an AUTH exchange.
func startsAUTH(line string) bool {
	kw, _, _ := cutSep(strings.TrimRight(line, "\r\n"))
	return strings.EqualFold(kw, "AUTH")
}
