package discrimination

// Case is a reference server of one profile judged by the expectations
// of another, and the requirements that must come out as deviations, each
// with why the two profiles differ there.
type Case struct {
	Server, Expect string
	Deviations     map[string]string
}

// Cases are the cross-profile runs. The discrimination test runs the
// suite for each; the probe's own test checks its report against them.
var Cases = []Case{
	{
		Server: "exchange2007", Expect: "exchange2010",
		Deviations: map[string]string{
			"2.1.2": "Exchange 2007 refuses commands longer than 47 octets",
			"E0006": "the command limit is 47, not 512",
			"E0007": "the command limit is 47, not 512",
			"C0010": "a user homed in another site cannot log in to Exchange 2007",
			// RFC rules the 47-octet limit breaks and the 512-octet one keeps.
			"RFC2449-4-cmd-255":     "a CAPA server must take 255-octet commands; Exchange 2007 stops at 47",
			"RFC2449-4-cmd-cap-max": "an AUTH line with a 255-octet initial response does not fit in 47 octets",
		},
	},
	{
		// A strict RFC 1939 server judged by Exchange 2010 expectations.
		Server: "rfc1939", Expect: "exchange2010",
		Deviations: map[string]string{
			"2.1.1": "RFC 1939 takes a single SPACE only; Exchange also runs of SPACEs or TABs",
			"2.1.2": "the command limit is RFC 2449's 255 octets, not Exchange 2010's 512",
			"E0006": "the command limit is 255, not 512",
			"E0007": "the command limit is 255, not 512",
			"2.1.3": "RFC 1939 locks the maildrop, so a second session cannot log in; Exchange takes no lock",
			"2.1.4": "STAT gives exact octets, not Exchange's storage-based size",
			"2.1.5": "LIST gives exact octets, not Exchange's storage-based size",
			"C0004": "with the lock, a second session cannot log in to delete a message behind the first one's back",
			"E0002": "the RFC server offers SASL PLAIN only, no NTLM",
			"V0002": "RFC 1939 timers are 10 minutes in both states, not 60 s / 30 min",
			"V0003": "RFC 1939 closes an idle session silently; Exchange sends a notice first",
			"V0008": "USER for an unknown mailbox gets -ERR, not +OK",
			"V0009": "USER tells an unknown mailbox from an existing one",
			"V0012": "the RFC server offers APOP, with a timestamp in its greeting",
			// RFC rules whose expectation the profiles set differently.
			"RFC1939-7-apop-unsupported":     "the greeting carries an APOP timestamp, which an Exchange profile does not expect",
			"RFC2449-6.3-sasl-cap":           "SASL lists PLAIN only where Exchange lists NTLM and PLAIN",
			"RFC2449-6.9-implementation-cap": "the RFC profile advertises IMPLEMENTATION; Exchange does not",
			// Real Exchange lists none of these (public captures).
			"RFC2449-6.4-resp-codes-cap":   "the RFC server advertises RESP-CODES; Exchange does not",
			"RFC2449-6.6-pipelining-cap":   "the RFC server advertises PIPELINING; Exchange does not",
			"RFC3206-6-auth-resp-code-cap": "the RFC server advertises AUTH-RESP-CODE; Exchange does not",
		},
	},
	{
		// Exchange 2010 judged by strict RFC 1939 expectations.
		Server: "exchange2010", Expect: "rfc1939",
		Deviations: map[string]string{
			"2.1.1": "Exchange takes TABs and runs of SPACEs as separators; RFC 1939 one SPACE",
			"2.1.2": "Exchange takes 512-octet commands where the RFC profile stops at 255",
			"E0006": "the command limit is 512, not 255",
			"E0007": "the command limit is 512, not 255",
			"2.1.3": "Exchange takes no lock, so a second session logs in",
			"2.1.4": "STAT gives the storage-based size, not exact octets",
			"2.1.5": "LIST gives storage-based sizes, not exact octets",
			"V0002": "Exchange's timers are 60 s / 30 min, not 10 minutes",
			"V0003": "Exchange sends a notice before closing an idle session",
			"V0008": "USER for an unknown mailbox gets +OK, not -ERR",
			"V0012": "Exchange has no APOP and no timestamp in its greeting",
			// RFC rules Exchange varies.
			"RFC1939-3-cmd-arg-sep":             "TAB and two SPACEs are taken as separators",
			"RFC1939-3-autologout-min":          "the unauthenticated timer is 60 s, under the RFC's 10 minutes",
			"RFC1939-3-autologout-no-update":    "the autologout sends a notice, where the RFC closes without a response",
			"RFC1939-3-no-response-without-cmd": "the autologout notice is a line the client did not ask for",
			"RFC1939-4-lock-on-success":         "no exclusive lock at login",
			"RFC1939-4-lock-fail-err":           "a second login is not refused, since nothing is locked",
			"RFC1939-7-pass-locks":              "PASS takes no lock",
			"RFC1939-4-size-octets":             "sizes are storage-based, not exact octets",
			"RFC1939-11-size-crlf":              "sizes are storage-based, not the CRLF octet count",
			"RFC1939-5-stat-format":             "the STAT size is storage-based, not the exact octets",
			"RFC1939-5-list-all":                "LIST sizes are storage-based, not exact",
			"RFC1939-5-list-one":                "LIST n sizes are storage-based, not exact",
			"RFC1939-5-scanlisting-format":      "scan listings carry storage-based sizes, not exact ones",
			"RFC1939-7-apop-banner":             "no APOP timestamp in the greeting",
			"RFC1939-7-apop-digest":             "APOP is not supported",
			"RFC2449-6.3-sasl-cap":              "SASL lists NTLM as well as PLAIN",
			"RFC2449-6.9-implementation-cap":    "no IMPLEMENTATION capability",
			"RFC2449-6.4-resp-codes-cap":        "Exchange does not advertise RESP-CODES",
			"RFC2449-6.6-pipelining-cap":        "Exchange does not advertise PIPELINING",
			"RFC3206-6-auth-resp-code-cap":      "Exchange does not advertise AUTH-RESP-CODE",
			"RFC3206-4-sys-temp-semantics":      "a connection past the limit gets no [SYS/TEMP], since Exchange sends no response codes",
		},
	},
}
