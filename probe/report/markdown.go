package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// maxMarkdownTranscript bounds each transcript so the document still fits a
// pull-request comment (GitHub allows 65536 characters).
const maxMarkdownTranscript = 4000

// writeMarkdown writes a summary, the deviations with evidence, and a table
// of every statement.
func writeMarkdown(w io.Writer, r *Report) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }

	p("# POP3 conformance report\n\n")
	writeIdentityMarkdown(p, r)
	p("- **Allowed:** %s\n", r.Target.AllowedText())
	if c := r.Commands; c != nil {
		p("- **Commands sent, by class:** %s\n", CountsText(c.Sent))
		if t := c.TrafficText(); t != "" {
			p("- **Network:** %s\n", t)
		}
		if c.Sessions != "" {
			p("- **Sessions:** %s\n", mdInline(c.Sessions))
		}
		if len(c.Refused) > 0 {
			p("- **Kept from the server (not allowed):** %s\n", CountsText(c.Refused))
		}
	}
	if f := r.Facts; f != nil && f.Measured {
		p("- **Measured before judging:** %s\n", mdInline(strings.ReplaceAll(strings.TrimSpace(f.Summary()), "\n", "; ")))
	}
	if r.Target.LabelFilter != "" {
		p("- **Label filter:** `%s`\n", strings.ReplaceAll(r.Target.LabelFilter, "`", "'"))
	}
	if c := r.Target.Certificate; c != nil {
		p("- **Certificate:** %s\n", mdInline(c.Text()))
	}
	p("\n")
	if r.SuiteError != "" {
		p("> **The suite could not judge the target:** %s\n\n", mdInline(r.SuiteError))
	}
	for _, w := range r.Warnings {
		p("> **Warning:** %s\n\n", mdInline(w))
	}
	writeIndexMarkdown(p, r)

	p("## Summary\n\n| group | total |")
	for _, v := range Verdicts {
		p(" %s |", v)
	}
	p("\n|---|---:|")
	for range Verdicts {
		p("---:|")
	}
	p("\n")
	row := func(name string, total int, counts map[verdict.Verdict]int) {
		p("| %s | %d |", name, total)
		for _, v := range Verdicts {
			p(" %d |", counts[v])
		}
		p("\n")
	}
	for _, g := range r.Summary.Groups {
		row(mdCell(g.Name), g.Total, g.Counts)
	}
	row("**all**", r.Summary.Total, r.Summary.Counts)
	p("\n")

	writeObservedMarkdown(p, r)

	if bad := r.Deviating(); len(bad) > 0 {
		p("## Deviations\n\n")
		for _, st := range bad {
			p("### %s (%s §%s): %s\n\n", mdInline(st.ID), mdInline(st.Source), mdInline(st.Section), st.Verdict)
			p("%s\n\n", mdInline(st.Summary))
			if a := st.AcceptedText(); a != "" {
				p("_%s_\n\n", mdInline(a))
			}
			if e := st.ExpectedText(); e != "" {
				p("Profile expects: %s", mdInline(e))
				if o := st.ObservedText(); o != "" {
					p("; measured: %s", mdInline(o))
				}
				p("\n\n")
			}
			for _, s := range st.Specs {
				if s.Verdict != verdict.Deviates && s.Verdict != verdict.Error {
					continue
				}
				p("- **%s** — %s\n", mdInline(s.Text), s.Verdict)
				if s.Reason != "" {
					p("\n  ```text\n%s\n  ```\n", indent(fence(s.Reason), "  "))
				}
				if s.Transcript != "" {
					t := s.Transcript
					if len(t) > maxMarkdownTranscript {
						t = t[:maxMarkdownTranscript] + "\n… (cut; the JSON and HTML reports hold all of it)"
					}
					p("\n  <details><summary>transcript</summary>\n\n  ```text\n%s\n  ```\n\n  </details>\n", indent(fence(t), "  "))
				}
				p("\n")
			}
		}
	}

	p("## Statements\n\n| id | source | section | verdict | summary | reason | expected / measured |\n|---|---|---|---|---|---|---|\n")
	for _, st := range r.Statements {
		id := mdCell(st.ID)
		if bad(st.Verdict) {
			// The anchor the deviations index links to.
			id = `<a id="` + mdAnchor(st.ID) + `"></a>` + id
		}
		mark := verdictMark(st.Verdict)
		if st.Note != "" {
			mark += " (" + mdCell(st.Note) + ")"
		}
		p("| %s | %s | %s | %s | %s | %s | %s |\n", id, mdCell(st.Source), mdCell(st.Section),
			mark, mdCell(st.Summary), mdCell(firstLine(st.Reason)), mdCell(expectedMeasured(st)))
	}
	if len(r.UnknownIDs) > 0 {
		p("\nSpecs named requirements the catalogue does not hold: %s\n", mdInline(strings.Join(r.UnknownIDs, ", ")))
	}
	return b.Flush()
}

// writeIdentityMarkdown names the target, the profile, when and by what
// tool: the head of the full report and of the preflight one.
func writeIdentityMarkdown(p func(string, ...any), r *Report) {
	p("- **Target:** %s\n", mdInline(r.Target.Name))
	p("- **Profile:** %s\n", mdInline(r.Profile))
	if !r.StartTime.IsZero() {
		took := ""
		if r.DurationSeconds > 0 {
			took = fmt.Sprintf(", took %.1fs", r.DurationSeconds)
		}
		p("- **Started:** %s%s\n", r.StartTime.UTC().Format("2006-01-02 15:04:05 MST"), took)
	}
	p("- **Tool:** %s %s\n", mdInline(r.Tool.Name), mdInline(r.Tool.Version))
	if r.Expect != nil {
		p("- **Baseline:** %s\n", mdInline(r.Expect.Text()))
	}
}

// writeIndexMarkdown lists the deviating statements first, each linked
// to its row in the statements table, so a long report leads with what
// needs fixing.
func writeIndexMarkdown(p func(string, ...any), r *Report) {
	bad := r.Deviating()
	if len(bad) == 0 {
		if r.SuiteError == "" {
			p("**No statement deviates.**\n\n")
		}
		return
	}
	p("## Deviations index\n\n%s:\n\n", harness.Count(len(bad), "statement")+" deviate or could not finish")
	for _, st := range bad {
		mark := verdictMark(st.Verdict)
		if a := st.AcceptedText(); a != "" {
			mark += " (" + mdInline(a) + ")"
		}
		p("- [%s](#%s) %s: %s\n", mdInline(st.ID), mdAnchor(st.ID), mark, mdInline(st.Summary))
	}
	p("\n")
}

// mdAnchor is a statement ID as an HTML id: IDs are catalogue names
// (letters, digits, '.', '-'), so only stray characters need replacing.
func mdAnchor(id string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, id)
}

// expectedMeasured shows what the profile expected and what was measured
// for the statement's keys, for the statements table.
func expectedMeasured(st Statement) string {
	var parts []string
	if e := st.ExpectedText(); e != "" {
		parts = append(parts, "expected "+e)
	}
	if o := st.ObservedText(); o != "" {
		parts = append(parts, "measured "+o)
	}
	return strings.Join(parts, "; ")
}

func verdictMark(v verdict.Verdict) string {
	switch v {
	case verdict.Conformant:
		return "✅ conformant"
	case verdict.Deviates:
		return "❌ **deviates**"
	case verdict.Error:
		return "⚠️ **error**"
	case verdict.Inconclusive:
		return "❔ inconclusive"
	}
	return string(v)
}

// mdCell makes text safe inside a table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	return mdInline(s)
}

// mdInline keeps server-controlled text from turning into markup or HTML.
func mdInline(s string) string {
	r := strings.NewReplacer("<", "&lt;", ">", "&gt;", "`", "'", "\n", " ")
	return r.Replace(s)
}

// fence keeps text from closing the code fence it sits in.
func fence(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r", ""), "```", "'''")
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	const max = 160
	if len(l) > max {
		l = l[:max] + "…"
	}
	return l
}

// writeObservedMarkdown writes the profile comparisons (by statements,
// then by parameters) and the measured parameters.
func writeObservedMarkdown(p func(string, ...any), r *Report) {
	writeScoresMarkdown(p, r)
	if len(r.Profiles) > 0 {
		if len(r.ProfileScores) > 0 {
			p("## Closest profile by parameters\n\n")
		} else {
			p("## Closest profile\n\n")
			p("By measured parameters; `--compare-profiles` also counts the statements the server passes under each bundled profile.\n\n")
		}
		for _, m := range r.Profiles {
			chosen := ""
			if m.Chosen {
				chosen = " (chosen)"
			}
			p("- **%s**%s: %s\n", mdInline(m.Name), chosen, m.Summary())
			for _, d := range m.Differences {
				p("  - %s\n", mdInline(d.Text(m.Name)))
			}
		}
		p("\n")
	}
	if len(r.Observed) == 0 {
		return
	}
	p("## Observed server parameters\n\n| parameter | value |\n|---|---|\n")
	for _, k := range r.ObservedKeys() {
		p("| %s | %s |\n", mdCell(k), mdCell(ShowValue(r.Observed[k])))
	}
	if o := r.Observation; o != nil {
		p("\nMeasured after the specs in %.1fs over %s.", o.Seconds, harness.Count(o.Connections, "connection"))
		var keys []string
		for k := range o.NotMeasured {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p(" Not measured: %s (%s).", mdInline(k), mdInline(o.NotMeasured[k]))
		}
		for _, e := range o.Errors {
			p(" Broke off: %s.", mdInline(e))
		}
		p("\n")
	}
	p("\n")
}

// maxMarkdownDeviating bounds the statement IDs listed per profile; the
// JSON report lists them all.
const maxMarkdownDeviating = 12

// writeScoresMarkdown writes the --compare-profiles table, best first.
func writeScoresMarkdown(p func(string, ...any), r *Report) {
	if len(r.ProfileScores) == 0 {
		return
	}
	p("## Closest profile by statements\n\n")
	if r.ClosestProfileBy == ClosestByStatements {
		p("The specs ran once per bundled profile; the server passes the most statements under **%s**.\n\n", mdInline(r.ClosestProfile))
	}
	p("| profile | conformant | deviates | other |\n|---|---:|---:|---:|\n")
	for _, s := range r.ProfileScores {
		name := mdCell(s.Name)
		if s.Chosen {
			name += " (chosen)"
		}
		if s.Error != "" {
			p("| %s | – | – | – |\n", name)
			continue
		}
		p("| %s | %d | %d | %d |\n", name, s.Conformant(), s.Deviates(), s.Other())
	}
	p("\n")
	notes := false
	for _, s := range r.ProfileScores {
		switch {
		case s.Error != "":
			p("- **%s** could not be judged: %s\n", mdInline(s.Name), mdInline(firstLine(s.Error)))
		case len(s.Deviating) > 0:
			p("- **%s** deviates in %s\n", mdInline(s.Name), mdInline(shortList(s.Deviating, maxMarkdownDeviating)))
		default:
			continue
		}
		notes = true
	}
	if notes {
		p("\n")
	}
}

// shortList joins at most limit items and says how many it left out.
func shortList(items []string, limit int) string {
	if len(items) <= limit {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:limit], ", "), len(items)-limit)
}
