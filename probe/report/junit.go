package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/pop3conformance/pop3conformance/model/verdict"
)

// JUnit XML as CI systems read it: one testcase per statement, so a
// pipeline shows requirements, not spec texts.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func writeJUnit(w io.Writer, r *Report) error {
	secs := func(f float64) string { return fmt.Sprintf("%.3f", f) }
	s := junitSuite{
		Name: "POP3 conformance: " + r.Target.Name,
		Time: secs(r.DurationSeconds),
		Properties: []junitProperty{
			{"target", r.Target.Name},
			{"profile", r.Profile},
			{"tool", r.Tool.Name + " " + r.Tool.Version},
		},
	}
	if !r.StartTime.IsZero() {
		s.Timestamp = r.StartTime.UTC().Format("2006-01-02T15:04:05")
	}
	if r.SuiteError != "" {
		s.Properties = append(s.Properties, junitProperty{"suite_error", r.SuiteError})
	}
	for _, st := range r.Statements {
		var t float64
		for _, sp := range st.Specs {
			t += sp.Seconds
		}
		c := junitCase{
			Name:      fmt.Sprintf("%s: %s", st.ID, st.Summary),
			Classname: fmt.Sprintf("%s §%s", st.Source, st.Section),
			Time:      secs(t),
		}
		switch {
		case st.Accepted && (st.Verdict == verdict.Deviates || st.Verdict == verdict.Error):
			// A deviation the --expect baseline accepts must not fail a
			// CI gate that reads JUnit; it stays visible as skipped,
			// with its evidence.
			why := "accepted by the baseline"
			if st.AcceptedReason != "" {
				why += ": " + st.AcceptedReason
			}
			c.Skipped = &junitMessage{Message: fmt.Sprintf("%s (%s: %s)", why, st.Verdict, firstLine(st.Reason))}
			c.SystemOut = evidence(st)
			s.Skipped++
		case st.Verdict == verdict.Conformant:
		case st.Verdict == verdict.Deviates:
			c.Failure = &junitMessage{Message: firstLine(st.Reason), Type: string(st.Verdict), Text: evidence(st)}
			s.Failures++
		case st.Verdict == verdict.Error:
			c.Error = &junitMessage{Message: firstLine(st.Reason), Type: string(st.Verdict), Text: evidence(st)}
			s.Errors++
		default:
			// Not applicable, inconclusive, not observable, not run: not
			// judged, so skipped with the verdict and its reason.
			c.Skipped = &junitMessage{Message: fmt.Sprintf("%s: %s", st.Verdict, st.Reason)}
			s.Skipped++
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	doc := junitSuites{
		Name: "POP3 conformance", Tests: s.Tests, Failures: s.Failures,
		Errors: s.Errors, Skipped: s.Skipped, Time: s.Time, Suites: []junitSuite{s},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// evidence is the failure text of the deviating specs with their
// transcripts.
func evidence(st Statement) string {
	var b strings.Builder
	for _, sp := range st.Specs {
		if sp.Verdict != verdict.Deviates && sp.Verdict != verdict.Error {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", sp.Verdict, sp.Text)
		if sp.Location != "" {
			fmt.Fprintf(&b, "at %s\n", sp.Location)
		}
		if sp.Reason != "" {
			fmt.Fprintf(&b, "%s\n", sp.Reason)
		}
		if sp.Transcript != "" {
			fmt.Fprintf(&b, "--- transcript ---\n%s\n", sp.Transcript)
		}
		b.WriteString("\n")
	}
	return b.String()
}
