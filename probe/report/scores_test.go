package report

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/verdict"
)

// score is a judged entry with c conformant and d deviating statements
// of 10.
func score(name string, c, d int) ProfileScore {
	counts := newCounts()
	counts[verdict.Conformant], counts[verdict.Deviates], counts[verdict.NotRun] = c, d, 10-c-d
	return ProfileScore{Name: name, Counts: counts}
}

func TestScoreOf(t *testing.T) {
	r := build(t)
	s := ScoreOf("exchange2010", r)
	if s.Error != "" || s.Conformant() != 1 || s.Deviates() != 2 || s.Other() != 4 {
		t.Errorf("score %+v", s)
	}
	if !slices.Equal(s.Deviating, []string{"2.1.1", "RFC1939-3-keywords"}) {
		t.Errorf("deviating %v", s.Deviating)
	}
	s.Counts[verdict.Conformant] = 99
	if r.Summary.Counts[verdict.Conformant] != 1 {
		t.Error("the score shares the report's counts")
	}
	r.SuiteError = "cannot connect"
	if s := ScoreOf("x", r); s.Error != "cannot connect" || s.Counts != nil || s.Deviating != nil {
		t.Errorf("a run that could not judge: %+v", s)
	}
}

func TestSetProfileScores(t *testing.T) {
	tests := []struct {
		name    string
		others  []ProfileScore
		order   []string
		closest string // empty: the parameter comparison stays
	}{
		{"most conformant first", []ProfileScore{score("a", 1, 0), score("b", 6, 0), score("c", 2, 0)}, []string{"b", "main", "c", "a"}, "b"},
		{"then fewest deviates", []ProfileScore{score("a", 5, 3), score("b", 5, 1)}, []string{"b", "main", "a"}, "b"},
		{"chosen first on a tie", []ProfileScore{score("a", 5, 2), score("b", 5, 2)}, []string{"main", "a", "b"}, "main"},
		{"failed runs last", []ProfileScore{{Name: "a", Error: "exit 2"}, score("b", 0, 9)}, []string{"main", "b", "a"}, "main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Profile: "main", ClosestProfile: "by-params", ClosestProfileBy: ClosestByParameters,
				Summary: Summary{Counts: score("", 5, 2).Counts}}
			r.SetProfileScores(tt.others)
			var names []string
			for _, s := range r.ProfileScores {
				names = append(names, s.Name)
				if s.Chosen != (s.Name == "main") {
					t.Errorf("%s chosen %v", s.Name, s.Chosen)
				}
			}
			if !slices.Equal(names, tt.order) {
				t.Errorf("order %v, want %v", names, tt.order)
			}
			if r.ClosestProfile != tt.closest || r.ClosestProfileBy != ClosestByStatements {
				t.Errorf("closest %q by %q, want %q by statements", r.ClosestProfile, r.ClosestProfileBy, tt.closest)
			}
		})
	}
	t.Run("nothing judged", func(t *testing.T) {
		r := &Report{Profile: "main", SuiteError: "down", ClosestProfile: "by-params", ClosestProfileBy: ClosestByParameters}
		r.SetProfileScores([]ProfileScore{{Name: "a", Error: "exit 2"}})
		if r.ClosestProfile != "by-params" || r.ClosestProfileBy != ClosestByParameters || len(r.ProfileScores) != 2 {
			t.Errorf("closest %q by %q, scores %+v", r.ClosestProfile, r.ClosestProfileBy, r.ProfileScores)
		}
	})
}

// scored is the test report with a comparison: rfc1939 passes more.
func scored(t *testing.T) *Report {
	r := build(t)
	r.Profiles = []ProfileMatch{{Name: "exchange2010", Chosen: true, Compared: 1, Matching: 1}}
	r.ClosestProfile, r.ClosestProfileBy = "exchange2010", ClosestByParameters
	r.SetProfileScores([]ProfileScore{score("rfc1939", 5, 0), {Name: "dovecot", Error: "the run under profile dovecot wrote no report: boom"}})
	return r
}

func TestProfileScoresRendered(t *testing.T) {
	r := scored(t)
	encode := func(f Format) string {
		var buf bytes.Buffer
		if err := Encode(&buf, f, r); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	tests := []struct {
		format Format
		want   []string // in this order
	}{
		{Markdown, []string{"## Closest profile by statements", "under **rfc1939**",
			"| profile | conformant | deviates | other |", "| rfc1939 | 5 | 0 | 5 |", "| exchange2010 (chosen) | 1 | 2 | 4 |", "| dovecot | – | – | – |",
			"- **exchange2010** deviates in 2.1.1, RFC1939-3-keywords", "- **dovecot** could not be judged: the run under profile dovecot wrote no report: boom",
			"## Closest profile by parameters"}},
		{HTML, []string{"<h2>Closest profile by statements</h2>", "<strong>rfc1939</strong>",
			"<td>rfc1939</td><td class=\"n\">5</td><td class=\"n\">0</td><td class=\"n\">5</td>",
			"<td>exchange2010 (chosen)</td><td class=\"n\">1</td><td class=\"n\">2</td><td class=\"n\">4</td><td><small><a href=\"#2.1.1\">2.1.1</a>, <a href=\"#RFC1939-3-keywords\">RFC1939-3-keywords</a></small>",
			"<td>dovecot</td>", "could not be judged: the run under profile dovecot wrote no report: boom", "<h2>Closest profile by parameters</h2>"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			doc, at := encode(tt.format), 0
			for _, w := range tt.want {
				i := strings.Index(doc[at:], w)
				if i < 0 {
					t.Fatalf("lacks %q after offset %d:\n%s", w, at, doc)
				}
				at += i + len(w)
			}
		})
	}
	t.Run("yaml", func(t *testing.T) {
		var back struct {
			ClosestProfile   string         `yaml:"closest_profile"`
			ClosestProfileBy string         `yaml:"closest_profile_by"`
			ProfileScores    []ProfileScore `yaml:"profile_scores"`
		}
		if err := yaml.Unmarshal([]byte(encode(YAML)), &back); err != nil {
			t.Fatal(err)
		}
		if back.ClosestProfile != "rfc1939" || back.ClosestProfileBy != ClosestByStatements || len(back.ProfileScores) != 3 ||
			back.ProfileScores[1].Deviates() != 2 || back.ProfileScores[2].Error == "" {
			t.Errorf("%+v", back)
		}
	})
}

// TestMarkdownWithoutScores: without --compare-profiles the Markdown
// keeps its heading and gains only a hint.
func TestMarkdownWithoutScores(t *testing.T) {
	r := build(t)
	r.Profiles = []ProfileMatch{{Name: "exchange2010", Chosen: true, Compared: 1, Matching: 1}}
	var buf bytes.Buffer
	if err := Encode(&buf, Markdown, r); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	if !strings.Contains(md, "## Closest profile\n") || strings.Contains(md, "by statements") || strings.Count(md, "--compare-profiles") != 1 {
		t.Errorf("markdown:\n%s", md)
	}
}
