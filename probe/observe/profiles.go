package observe

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/probe/report"
)

// profileKey ties an observed parameter to the profile key of the same
// name: how to read it from a profile for comparison, and how to write a
// measured value into a suggested profile.
type profileKey struct {
	key string
	// get returns the profile's value in the observed value's form;
	// ok=false when the key does not apply (storage_block_octets of a
	// profile with exact sizes).
	get func(p *profile.Profile) (v any, ok bool)
	set func(p *profile.Profile, v any) (note string)
	// same compares (default: reflect.DeepEqual).
	same func(observed, prof any) bool
	// usable says whether the measured value may go into a profile
	// (default: yes); why says why not.
	usable func(params map[string]any) (ok bool, why string)
	// text marks a reply text: no conformance matter, and weighed
	// lightly when profiles are ranked (score).
	text bool
}

// Reply texts weigh lightly when profiles are ranked (score): all the
// texts compared with a profile together count as much as one
// parameter, by the share of them that match. So a server's wording
// tells apart profiles its parameters leave tied (exchange2010 and
// exchange2007 differ in the QUIT text besides the line limit), and
// never outweighs a parameter that differs.

// boundUsable keeps a line limit out of a profile unless it is exact or
// at-most: an at-least value would have the suite expect a refusal one
// octet over it, which nothing measured.
func boundUsable(key string) func(map[string]any) (bool, string) {
	return func(params map[string]any) (bool, string) {
		switch b, _ := params[key+"_bound"].(string); b {
		case BoundExact, BoundAtMost:
			return true, ""
		default:
			return false, fmt.Sprintf("measured %v octets %s: no refusal seen, so no limit to expect", params[key], b)
		}
	}
}

func always(v any) (any, bool) { return v, true }

// profileKeys lists the keys the probe measures: the parameters in
// profile order, then the reply texts.
var profileKeys = append(parameterKeys, replyKeys()...)

var parameterKeys = []profileKey{
	{key: "greeting",
		get: func(p *profile.Profile) (any, bool) { return always(p.Greeting) },
		set: func(p *profile.Profile, v any) string { p.Greeting = v.(string); return "" }},
	{key: "implementation",
		get: func(p *profile.Profile) (any, bool) { return always(p.Implementation) },
		set: func(p *profile.Profile, v any) string { p.Implementation = v.(string); return "" }},
	{key: "separators",
		get: func(p *profile.Profile) (any, bool) { return always(string(p.Separators)) },
		set: func(p *profile.Profile, v any) string { p.Separators = profile.Separators(v.(string)); return "" },
		usable: func(params map[string]any) (bool, string) {
			if params["separators"] == "mixed" {
				return false, "measured mixed (a TAB and two SPACEs differ): no profile value says that"
			}
			return true, ""
		}},
	{key: "max_command_octets",
		get: func(p *profile.Profile) (any, bool) { return always(p.MaxCommandOctets) },
		set: func(p *profile.Profile, v any) string {
			n := v.(int)
			// The suggested profile is not named exchange*, so the
			// general range of profile.Validate applies.
			clamped := min(max(n, 40), 65536)
			p.MaxCommandOctets = clamped
			if clamped != n {
				return fmt.Sprintf("measured %d; profiles allow 40..65536", n)
			}
			return ""
		},
		usable: boundUsable("max_command_octets")},
	{key: "max_command_octets_transaction",
		get: func(p *profile.Profile) (any, bool) { return always(p.CommandLimit(true)) },
		set: func(p *profile.Profile, v any) string {
			p.MaxCommandOctetsTransaction = min(max(v.(int), 40), 65536)
			return ""
		},
		usable: boundUsable("max_command_octets_transaction")},
	{key: "max_argument_chars",
		get: func(p *profile.Profile) (any, bool) { return always(p.MaxArgumentChars) },
		set: func(p *profile.Profile, v any) string { p.MaxArgumentChars = v.(int); return "" }},
	{key: "close_after_errors",
		get: func(p *profile.Profile) (any, bool) { return always(p.CloseAfterErrors) },
		set: func(p *profile.Profile, v any) string { p.CloseAfterErrors = v.(int); return "" }},
	{key: "close_after_errors_transaction",
		get: func(p *profile.Profile) (any, bool) { return always(p.ErrorLimit(true)) },
		set: func(p *profile.Profile, v any) string { p.CloseAfterErrorsTransaction = v.(int); return "" },
		// A profile's 0 here means "as before login", so it cannot say
		// that a server which closes before login never does after.
		usable: func(params map[string]any) (bool, string) {
			if tx, _ := params["close_after_errors_transaction"].(int); tx == 0 {
				if auth, _ := params["close_after_errors"].(int); auth > 0 {
					return false, fmt.Sprintf("no close after login, but after %d errors before it: a profile cannot say that", auth)
				}
			}
			return true, ""
		}},
	{key: "lock",
		get: func(p *profile.Profile) (any, bool) { return always(string(p.Lock)) },
		set: func(p *profile.Profile, v any) string { p.Lock = profile.Lock(v.(string)); return "" }},
	{key: "exact_sizes",
		get: func(p *profile.Profile) (any, bool) { return always(p.ExactSizes) },
		set: func(p *profile.Profile, v any) string {
			p.ExactSizes = v.(bool)
			return ""
		}},
	{key: "storage_block_octets",
		get: func(p *profile.Profile) (any, bool) { return p.StorageBlockOctets, !p.ExactSizes },
		set: func(p *profile.Profile, v any) string {
			if !p.ExactSizes {
				p.StorageBlockOctets = v.(int)
			}
			return ""
		}},
	{key: keyUnauthenticated,
		get:    func(p *profile.Profile) (any, bool) { return always(p.Timers.Unauthenticated.String()) },
		set:    func(p *profile.Profile, v any) string { return setDuration(&p.Timers.Unauthenticated, v) },
		same:   sameDuration,
		usable: durationUsable(keyUnauthenticated)},
	{key: keyAuthenticated,
		get:    func(p *profile.Profile) (any, bool) { return always(p.Timers.Authenticated.String()) },
		set:    func(p *profile.Profile, v any) string { return setDuration(&p.Timers.Authenticated, v) },
		same:   sameDuration,
		usable: durationUsable(keyAuthenticated)},
	{key: keyNotice,
		get: func(p *profile.Profile) (any, bool) { return always(p.Timers.Notice) },
		set: func(p *profile.Profile, v any) string {
			p.Timers.Notice = v.(bool)
			return ""
		}},
	{key: keyNoticeText,
		// The text applies only to a profile whose server sends a notice.
		get: func(p *profile.Profile) (any, bool) { return p.Timers.NoticeText, p.Timers.Notice },
		set: func(p *profile.Profile, v any) string {
			p.Timers.NoticeText = v.(string)
			return ""
		},
		usable: func(params map[string]any) (bool, string) {
			if params[keyNoticeText] == "" {
				return false, "the notice had no text after its status"
			}
			return true, ""
		}},
	{key: "unknown_user_reply",
		get: func(p *profile.Profile) (any, bool) { return always(string(p.UnknownUserReply)) },
		set: func(p *profile.Profile, v any) string { p.UnknownUserReply = profile.Reply(v.(string)); return "" }},
	{key: "plaintext_before_tls",
		get: func(p *profile.Profile) (any, bool) { return always(p.PlaintextBeforeTLS) },
		set: func(p *profile.Profile, v any) string { p.PlaintextBeforeTLS = v.(bool); return "" }},
	{key: "apop",
		get: func(p *profile.Profile) (any, bool) { return always(p.APOP) },
		set: func(p *profile.Profile, v any) string { p.APOP = v.(bool); return "" }},
	{key: "sasl",
		get: func(p *profile.Profile) (any, bool) { return always(nonNil(slices.Clone(p.SASL))) },
		set: func(p *profile.Profile, v any) string { p.SASL = slices.Clone(v.([]string)); return "" }},
	{key: "login_delay",
		get: func(p *profile.Profile) (any, bool) { return p.LoginDelay.D().String(), p.LoginDelay > 0 },
		set: func(p *profile.Profile, v any) string {
			d, err := time.ParseDuration(v.(string))
			if err == nil {
				p.LoginDelay = profile.Duration(d)
			}
			return ""
		}},
	{key: "capabilities",
		get: func(p *profile.Profile) (any, bool) {
			var tags []string
			for _, c := range p.Capabilities {
				if f := strings.Fields(c); len(f) > 0 && !strings.EqualFold(f[0], "EXPIRE") {
					tags = append(tags, strings.ToUpper(f[0]))
				}
			}
			return nonNil(tags), true
		},
		set:  func(p *profile.Profile, v any) string { p.Capabilities = slices.Clone(v.([]string)); return "" },
		same: func(o, p any) bool { return sameSet(o.([]string), p.([]string)) }},
	{key: "stls",
		get: func(p *profile.Profile) (any, bool) { return always(p.STLS) },
		set: func(p *profile.Profile, v any) string { p.STLS = v.(bool); return "" }},
	{key: "uid.format",
		get: func(p *profile.Profile) (any, bool) { return always(string(p.UID.Format)) },
		set: func(p *profile.Profile, v any) string { p.UID.Format = profile.UIDFormat(v.(string)); return "" },
		// "any" constrains nothing: every observed format fits it.
		same: func(o, p any) bool { return p == string(profile.UIDAny) || o == p }},
	{key: "overlong_command",
		get: func(p *profile.Profile) (any, bool) {
			if p.OverlongCloses() {
				return string(profile.OverlongClose), true
			}
			return string(profile.OverlongErr), true
		},
		set: func(p *profile.Profile, v any) string { p.OverlongCommand = profile.Overlong(v.(string)); return "" }},
	{key: "capa_order",
		get: func(p *profile.Profile) (any, bool) {
			if p.CAPAOrder == profile.CAPAOrderExchange {
				return string(profile.CAPAOrderExchange), true
			}
			return string(profile.CAPAOrderTags), true
		},
		set: func(p *profile.Profile, v any) string { p.CAPAOrder = profile.CAPAOrder(v.(string)); return "" }},
	{key: "greeting_backend",
		get: func(p *profile.Profile) (any, bool) { return always(p.GreetingBackend) },
		set: func(p *profile.Profile, v any) string { p.GreetingBackend = v.(bool); return "" }},
}

// replyFields are the reply keys the probe records (replies.<name>),
// each with its field in profile.Replies.
var replyFields = []struct {
	name  string
	field func(r *profile.Replies) *string
}{
	{"user", func(r *profile.Replies) *string { return &r.User }},
	{"pass_ok", func(r *profile.Replies) *string { return &r.PassOK }},
	{"pass_failed", func(r *profile.Replies) *string { return &r.PassFailed }},
	{"plaintext_refused", func(r *profile.Replies) *string { return &r.PlaintextRefused }},
	{"wrong_state", func(r *profile.Replies) *string { return &r.WrongState }},
	{"unknown_command", func(r *profile.Replies) *string { return &r.UnknownCommand }},
	{"overlong", func(r *profile.Replies) *string { return &r.Overlong }},
	{"capa", func(r *profile.Replies) *string { return &r.CAPA }},
	{"stls", func(r *profile.Replies) *string { return &r.STLS }},
	{"retr", func(r *profile.Replies) *string { return &r.Retr }},
	{"uidl", func(r *profile.Replies) *string { return &r.UIDL }},
	{"noop", func(r *profile.Replies) *string { return &r.Noop }},
	{"quit", func(r *profile.Replies) *string { return &r.Quit }},
}

// replyKeys are the profileKeys of replyFields. A profile reply left
// empty keeps the server's own wording, which says nothing to compare.
func replyKeys() []profileKey {
	var out []profileKey
	for _, f := range replyFields {
		out = append(out, profileKey{key: "replies." + f.name, text: true,
			get: func(p *profile.Profile) (any, bool) {
				v := *f.field(&p.Replies)
				return v, v != ""
			},
			set: func(p *profile.Profile, v any) string { *f.field(&p.Replies) = v.(string); return "" }})
	}
	return out
}

// durationUsable keeps a measured duration no profile takes out of it.
func durationUsable(key string) func(map[string]any) (bool, string) {
	return func(params map[string]any) (bool, string) {
		s, _ := params[key].(string)
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			return false, fmt.Sprintf("measured %v, which no profile takes", params[key])
		}
		return true, ""
	}
}

// setDuration writes a measured Go duration string into a profile key.
func setDuration(dst *profile.Duration, v any) string {
	d, err := time.ParseDuration(v.(string))
	if err != nil || d <= 0 {
		return fmt.Sprintf("measured %v, which no profile takes; kept the closest profile's", v)
	}
	*dst = profile.Duration(d)
	return ""
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(x, y)
}

// Compare lists where the observed parameters and the profile disagree.
func Compare(params map[string]any, p *profile.Profile) report.ProfileMatch {
	m := report.ProfileMatch{Name: p.Name, Differences: []report.ProfileDifference{}}
	for _, k := range profileKeys {
		obs, ok := params[k.key]
		if !ok {
			continue
		}
		// A key the profile does not say is not compared (with zero).
		if !p.Known(k.key) {
			continue
		}
		pv, applies := k.get(p)
		if !applies {
			continue
		}
		compared, matching := &m.Compared, &m.Matching
		if k.text {
			compared, matching = &m.TextsCompared, &m.TextsMatching
		}
		*compared++
		same := reflect.DeepEqual
		if k.same != nil {
			same = func(a, b any) bool { return k.same(a, b) }
		}
		if same(obs, pv) {
			*matching++
			continue
		}
		m.Differences = append(m.Differences, report.ProfileDifference{Key: k.key, Observed: obs, Profile: pv})
	}
	return m
}

// score is a comparison's weight of matching keys and of differences:
// a parameter counts 1, the reply texts together 1, shared by their
// matching and differing ones.
func score(m report.ProfileMatch) (matching, differing float64) {
	matching, differing = float64(m.Matching), float64(m.Compared-m.Matching)
	if m.TextsCompared > 0 {
		share := float64(m.TextsMatching) / float64(m.TextsCompared)
		matching += share
		differing += 1 - share
	}
	return matching, differing
}

// CompareProfiles compares the parameters with every bundled profile and
// with chosen (a bundled name or a YAML file), closest first: the most
// weight of matching keys (score), then the least weight of differences,
// then the chosen one, then by name.
func CompareProfiles(params map[string]any, chosen string) ([]report.ProfileMatch, error) {
	var out []report.ProfileMatch
	found := false
	for _, name := range profile.Bundled() {
		p, err := profile.Load(name)
		if err != nil {
			return nil, err
		}
		m := Compare(params, p)
		if name == chosen {
			m.Chosen, found = true, true
		}
		out = append(out, m)
	}
	if !found && chosen != "" {
		p, err := profile.Load(chosen)
		if err != nil {
			return out, err
		}
		m := Compare(params, p)
		m.Name = chosen
		m.Chosen = true
		out = append(out, m)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		am, ad := score(a)
		bm, bd := score(b)
		if am != bm {
			return am > bm
		}
		if ad != bd {
			return ad < bd
		}
		if a.Chosen != b.Chosen {
			return a.Chosen
		}
		return a.Name < b.Name
	})
	return out, nil
}

func loadMatch(m report.ProfileMatch, chosen string) (*profile.Profile, error) {
	if m.Chosen && !slices.Contains(profile.Bundled(), m.Name) {
		return profile.Load(chosen)
	}
	return profile.Load(m.Name)
}

// Suggest writes a profile YAML of the measured keys only: a key the
// probe did not measure (or measured in a form no profile value says) is
// left out, and listed in a comment with the reason (from reasons, the
// observation's not_measured, when it has one). Fed back with --profile,
// the suite takes the keys left out as unknown (profile.Known) and ends
// the specs that need them inconclusive. base, the closest profile, is
// only named. The result loads (profile.Parse).
func Suggest(params map[string]any, reasons map[string]string, base *profile.Profile, target string, secrets report.Secrets) ([]byte, error) {
	p := &profile.Profile{Name: "observed", Description: "Measured by the pop3conformance probe"}
	if target != "" {
		p.Description += " against " + target
	}
	notes := map[string]string{}
	written := map[string]bool{"name": true, "description": true}
	why := map[string]string{}
	for k, r := range reasons {
		why[k] = r
	}
	for _, k := range profileKeys {
		v, ok := params[k.key]
		if !ok {
			continue
		}
		if k.usable != nil {
			if ok, reason := k.usable(params); !ok {
				why[k.key] = reason
				continue
			}
		}
		note := k.set(p, v)
		written[k.key] = true
		notes[k.key] = "measured"
		if note != "" {
			notes[k.key] += "; " + note
		}
	}
	if !p.APOP && strings.Contains(p.Greeting, "<") {
		p.Greeting = strings.ReplaceAll(p.Greeting, "<", "(")
	}
	secrets.ScrubValue(p)
	var doc yaml.Node
	if err := doc.Encode(p); err != nil {
		return nil, err
	}
	prune(&doc, "", written)
	annotate(&doc, notes)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# A profile of the server as the probe measured it (%s).\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&buf, "# It holds only measured keys. The suite takes every key left out as\n")
	fmt.Fprintf(&buf, "# unknown: a spec whose expectation needs one ends inconclusive.\n")
	if base != nil {
		fmt.Fprintf(&buf, "# The closest bundled profile is %s.\n", base.Name)
	}
	fmt.Fprintf(&buf, "# Feed it back with: pop3probe --profile observed-profile.yaml ...\n")
	var missing []string
	for _, k := range profile.Keys() {
		if !written[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(&buf, "#\n# Not measured (unknown):\n")
		for _, k := range missing {
			r := why[k]
			if r == "" {
				r = "the probe does not measure it"
			}
			fmt.Fprintf(&buf, "#   %s: %s\n", k, strings.ReplaceAll(r, "\n", " "))
		}
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	// Loading it back is the contract.
	got, err := profile.Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("the suggested profile does not load: %w", err)
	}
	for _, k := range missing {
		if got.Known(k) {
			return nil, fmt.Errorf("the suggested profile says %s, which was not measured", k)
		}
	}
	return buf.Bytes(), nil
}

// prune removes the mapping entries whose dotted key is not in keep, and
// mappings left empty.
func prune(n *yaml.Node, prefix string, keep map[string]bool) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			prune(c, prefix, keep)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	var out []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		if v.Kind == yaml.MappingNode {
			prune(v, key+".", keep)
			if len(v.Content) > 0 {
				out = append(out, k, v)
			}
			continue
		}
		if keep[key] {
			out = append(out, k, v)
		}
	}
	n.Content = out
}

// annotate comments every measured leaf key with its note.
func annotate(n *yaml.Node, notes map[string]string) {
	profile.EachLeaf(n, "", func(key string, k, _ *yaml.Node) {
		if notes[key] != "" {
			k.LineComment = notes[key]
		}
	})
}
