package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pop3conformance/pop3conformance/model/verdict"
	"github.com/pop3conformance/pop3conformance/probe/report"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// FleetRow is one target of a --targets run in summary.json and
// summary.md.
type FleetRow struct {
	Name    string `json:"name"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	TLS     string `json:"tls"`
	Profile string `json:"profile"`
	// Counts has one entry per verdict; absent when the child wrote no
	// report (the suite never started).
	Counts         map[verdict.Verdict]int `json:"counts,omitempty"`
	ClosestProfile string                  `json:"closest_profile,omitempty"`
	Exit           int                     `json:"exit"`
	// Report is the child's report directory; Error why it has no
	// report or could not judge the target.
	Report string `json:"report,omitempty"`
	Error  string `json:"error,omitempty"`
}

// FleetSummary is summary.json.
type FleetSummary struct {
	Tool    report.Tool `json:"tool"`
	Targets []FleetRow  `json:"targets"`
}

func fleetRows(results []targetResult, o runOptions) []FleetRow {
	rows := make([]FleetRow, len(results))
	for i, r := range results {
		t := r.Target.effective(o)
		row := FleetRow{Name: r.Name, Host: t.Host, Port: r.Target.port(), TLS: string(cmp.Or(t.TLS, harness.TLSNone)), Profile: t.Profile, Exit: r.Code, Report: r.Dir}
		if rep := r.Report; rep != nil {
			row.Counts = rep.Summary.Counts
			row.ClosestProfile = rep.ClosestProfile
			row.Error = rep.SuiteError
		}
		if r.Err != nil && row.Error == "" {
			row.Error = r.Err.Error()
		}
		rows[i] = row
	}
	return rows
}

// writeFleetSummary writes the summary of a --targets run as text (the
// table printed on stdout), Markdown and JSON into dir.
func writeFleetSummary(dir string, table []byte, rows []FleetRow) ([]string, error) {
	data, err := json.MarshalIndent(FleetSummary{Tool: tool(), Targets: rows}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the summary: %w", err)
	}
	var md bytes.Buffer
	writeFleetMarkdown(&md, rows)
	var paths []string
	for name, content := range map[string][]byte{"summary.txt": table, "summary.md": md.Bytes(), "summary.json": append(data, '\n')} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return paths, fmt.Errorf("writing the summary: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func writeFleetMarkdown(b *bytes.Buffer, rows []FleetRow) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# POP3 conformance: fleet summary\n\n| target | host | port | TLS | profile |")
	for _, v := range report.Verdicts {
		p(" %s |", v)
	}
	p(" closest profile | exit | report |\n|---|---|---:|---|---|")
	for range report.Verdicts {
		p("---:|")
	}
	p("---|---:|---|\n")
	for _, r := range rows {
		p("| %s | %s | %d | %s | %s |", mdText(r.Name), mdText(r.Host), r.Port, r.TLS, mdText(r.Profile))
		for _, v := range report.Verdicts {
			if r.Counts == nil {
				p(" – |")
				continue
			}
			p(" %d |", r.Counts[v])
		}
		where := ""
		if r.Counts != nil {
			// summary.md sits next to the target directories.
			where = "[" + mdText(r.Report) + "](" + filepath.Base(r.Report) + "/)"
		}
		if r.Error != "" {
			where = strings.TrimSpace(where + " " + mdText(firstLine(r.Error)))
		}
		p(" %s | %d | %s |\n", mdText(r.ClosestProfile), r.Exit, where)
	}
}

// mdText keeps a name or message from breaking the table.
func mdText(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
}
