package server

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// capabilities is the CAPA list for the session's current state.
//
// Choices (RFC 2449 §5 says tags valid in AUTHORIZATION must be listed in
// both states):
//   - the profile's tags, USER and SASL are listed in both states, the
//     same before and after login;
//   - STLS is listed only when the command is "present and permitted in
//     the current state" (RFC 2595 §4): plain listener, not yet under TLS,
//     AUTHORIZATION state;
//   - when plaintext logins need TLS (V0010), USER and SASL PLAIN are left
//     out until TLS is up (RFC 5034 §3 lets the list change after STLS).
func (s *session) capabilities() []string {
	var out []string
	plain := s.plaintextAllowed()
	for _, c := range s.prof.Capabilities {
		if !plain && strings.EqualFold(c, "USER") {
			continue
		}
		out = append(out, c)
	}
	if mechs := s.mechanisms(); len(mechs) > 0 {
		out = append(out, "SASL "+strings.Join(mechs, " "))
	}
	if s.prof.STLS && !s.implicitTLS && !s.underTLS && s.state == stateAuthorization {
		out = append(out, "STLS")
	}
	if s.prof.CAPAOrder == profile.CAPAOrderExchange {
		out = exchangeOrder(out)
	}
	if s.prof.Implementation != "" {
		out = append(out, "IMPLEMENTATION "+s.prof.Implementation)
	}
	if d := s.prof.LoginDelay.D(); d > 0 {
		// RFC 2449 section 6.5: one value for every user, so the same
		// before and after login.
		out = append(out, fmt.Sprintf("LOGIN-DELAY %d", int(d/time.Second)))
	}
	if st := s.prof.Storage; st.AdvertiseExpire && st.RetentionDays > 0 {
		out = append(out, fmt.Sprintf("EXPIRE %d", st.RetentionDays))
	}
	return out
}

// exchangeOrder puts TOP, UIDL, SASL, USER and STLS first, in that order,
// as Exchange 2013 and Exchange Online list them; other tags follow in
// their own order.
func exchangeOrder(tags []string) []string {
	rank := func(tag string) int {
		i := slices.Index([]string{"TOP", "UIDL", "SASL", "USER", "STLS"}, strings.ToUpper(strings.Fields(tag + " ")[0]))
		if i < 0 {
			return 5
		}
		return i
	}
	slices.SortStableFunc(tags, func(a, b string) int { return rank(a) - rank(b) })
	return tags
}

// mechanisms are the SASL mechanisms usable now, in profile order.
func (s *session) mechanisms() []string {
	var out []string
	for _, m := range s.prof.SASL {
		if m == "PLAIN" && !s.plaintextAllowed() {
			continue
		}
		if _, ok := saslMechanisms[m]; !ok {
			continue // a profile may name one this server cannot do
		}
		out = append(out, m)
	}
	return out
}

func (s *session) cmdCAPA(cmd command) {
	if !s.prof.AnswersCAPA(s.state == stateTransaction) {
		// capa: none or authorization: answered as the unknown command it
		// is to such a server, and counted like one (C0005).
		s.err("", "Unknown command")
		return
	}
	if !s.noArgs(cmd) {
		return
	}
	s.ok(profile.Text(s.prof.Replies.CAPA, "Capability list follows"))
	for _, c := range s.capabilities() {
		s.writeLine(truncate(c, s.prof.MaxResponseOctets-2))
	}
	s.writeLine(".")
}
