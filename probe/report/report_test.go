package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/catalog"
	"github.com/pop3conformance/pop3conformance/model/verdict"
)

const testCatalog = `
requirements:
  - {id: "2.1.1", source: MS-STANXPOP3, section: "2.1.1", summary: separators, level: MUST, verification: wire, profile_keys: [separators]}
  - {id: V0001, source: MS-STANXPOP3, section: "3.1.5", summary: "-ERR carries text", level: MUST, verification: wire}
  - {id: V0002, source: MS-STANXPOP3, section: "3.1.5", summary: idle timer, level: MUST, verification: wire}
  - {id: C0002, source: MS-STANXPOP3, section: "2.2", summary: not seen on the wire, level: MUST, verification: not-observable, reason: "server internals"}
  - {id: RFC1939-3-keywords, source: RFC 1939, section: "3", summary: keywords are case-insensitive, level: MUST, verification: wire}
  - {id: RFC2449-5-capa, source: RFC 2449, section: "5", summary: CAPA lists capabilities, level: MUST, verification: wire}
  - {id: RFC2449-6-lang, source: RFC 2449, section: "6", summary: never checked, level: MAY, verification: wire}
`

const secret = "s3cr3t-Pa55"

func testCat(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func spec(text string, state types.SpecState, msg, transcript string, labels ...string) types.SpecReport {
	sr := types.SpecReport{
		LeafNodeType:   types.NodeTypeIt,
		LeafNodeText:   text,
		LeafNodeLabels: labels,
		State:          state,
		RunTime:        50 * time.Millisecond,
		Failure:        types.Failure{Message: msg},
	}
	if transcript != "" {
		sr.ReportEntries = []types.ReportEntry{{Name: "transcript", Value: types.WrapEntryValue(transcript)}}
	}
	return sr
}

// testRuns is a suite run as Ginkgo reports it, put through JSON like a
// --json-report file so entry values are read back the way the probe does.
func testRuns(t *testing.T) []types.Report {
	t.Helper()
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	before := types.SpecReport{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePassed,
		ReportEntries: []types.ReportEntry{
			{Name: "target", Value: types.WrapEntryValue("127.0.0.1:1110 (bundled reference server)")},
			{Name: "profile", Value: types.WrapEntryValue("exchange2010")},
			{Name: "certificate", Value: types.WrapEntryValue(`{"subject":"CN=mail.example.org","issuer":"CN=Example CA","dns_names":["mail.example.org"],"not_after":"2027-11-25T00:00:00Z","verified":true,"tls_version":"TLS 1.3"}`)},
		}}
	runs := []types.Report{{
		StartTime: start, EndTime: start.Add(3 * time.Second),
		SpecReports: types.SpecReports{
			before,
			spec("accepts TAB", types.SpecStatePassed, "", "C: NOOP\r\nS: +OK", "readonly", "req:2.1.1"),
			spec("accepts two spaces", types.SpecStateFailed, "expected +OK, got -ERR (PASS "+secret+")",
				"C: USER alice\nC: PASS <redacted>\nS: -ERR bad "+secret, "readonly", "req:2.1.1", "req:RFC1939-3-keywords"),
			spec("err text", types.SpecStatePassed, "", "", "readonly", "req:V0001"),
			// Moot under the measured behaviour: V0001 stays conformant,
			// with a note that says one of its specs did not apply.
			spec("negative err text", types.SpecStateSkipped, "not applicable: the server sends no text after -ERR by profile", "", "readonly", "req:V0001"),
			// A robustness spec that could not run must not make V0001
			// inconclusive: its own spec judged it.
			spec("stalled reader", types.SpecStateSkipped, "inconclusive: no second account", "", "disruptive", "robustness", "req:V0001"),
			spec("idle", types.SpecStateSkipped, "needs permission: waits for a real server timer; allow with POP3_ALLOW=slow (probe: --slow)", "", "disruptive", "slow", "req:V0002"),
			spec("capa", types.SpecStateSkipped, "not applicable: the profile advertises no CAPA", "", "readonly", "req:RFC2449-5-capa"),
			spec("stray", types.SpecStatePassed, "", "", "readonly", "req:X9999"),
		},
	}}
	data, err := json.Marshal(runs)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ginkgo.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := LoadGinkgo(path)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func build(t *testing.T) *Report {
	return Build(testRuns(t), testCat(t), Input{Tool: Tool{Name: "probe", Version: "test"}})
}

func TestBuildVerdicts(t *testing.T) {
	r := build(t)
	tests := []struct {
		id         string
		verdict    verdict.Verdict
		reason     string // substring
		specs      int
		transcript bool
	}{
		{"2.1.1", verdict.Deviates, "expected +OK", 2, true},
		{"V0001", verdict.Conformant, "", 3, false},
		{"V0002", verdict.NotRun, "--slow", 1, false},
		{"C0002", verdict.NotObservable, "server internals", 0, false},
		{"RFC1939-3-keywords", verdict.Deviates, "expected +OK", 1, true},
		{"RFC2449-5-capa", verdict.NotApplicable, "advertises no CAPA", 1, false},
		{"RFC2449-6-lang", verdict.NotRun, "no spec", 0, false},
	}
	if len(r.Statements) != len(tests) {
		t.Fatalf("got %d statements, want %d", len(r.Statements), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			st := r.Statements[i]
			if st.ID != tt.id || st.Verdict != tt.verdict {
				t.Errorf("got %s %s, want %s %s", st.ID, st.Verdict, tt.id, tt.verdict)
			}
			if !strings.Contains(st.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", st.Reason, tt.reason)
			}
			if len(st.Specs) != tt.specs {
				t.Errorf("got %d specs, want %d", len(st.Specs), tt.specs)
			}
			has := false
			for _, s := range st.Specs {
				has = has || s.Transcript != ""
			}
			if has != tt.transcript {
				t.Errorf("transcript present = %v, want %v (evidence is kept for deviations only)", has, tt.transcript)
			}
		})
	}
	if r.Target.Name != "127.0.0.1:1110 (bundled reference server)" || r.Profile != "exchange2010" {
		t.Errorf("target %q profile %q not taken from BeforeSuite", r.Target.Name, r.Profile)
	}
	if got := strings.Join(r.UnknownIDs, ","); got != "X9999" {
		t.Errorf("unknown ids %q, want X9999", got)
	}
	if r.DurationSeconds != 3 {
		t.Errorf("duration %v, want 3", r.DurationSeconds)
	}
	want := map[verdict.Verdict]int{verdict.Deviates: 2, verdict.Conformant: 1, verdict.NotRun: 2, verdict.NotObservable: 1, verdict.NotApplicable: 1}
	for _, v := range Verdicts {
		if r.Summary.Counts[v] != want[v] {
			t.Errorf("count %s = %d, want %d", v, r.Summary.Counts[v], want[v])
		}
	}
	var names []string
	for _, g := range r.Summary.Groups {
		names = append(names, g.Name)
	}
	if got := strings.Join(names, "|"); got != "RFC 1939 base|RFC extensions|Exchange (MS-STANXPOP3)" {
		t.Errorf("groups %q", got)
	}
	if !r.Failed() {
		t.Error("a report with deviations must fail")
	}
}

func TestBuildSuiteLevelProblems(t *testing.T) {
	tests := []struct {
		name       string
		run        types.Report
		suiteError string
		warning    string
	}{
		{"timeout", types.Report{SpecialSuiteFailureReasons: []string{"Suite Timeout Elapsed"}}, "did not finish: Suite Timeout Elapsed", ""},
		{"after suite", types.Report{SpecReports: types.SpecReports{{LeafNodeType: types.NodeTypeAfterSuite, State: types.SpecStateFailed, Failure: types.Failure{Message: "close"}}}}, "", "close"},
		{"before suite first", types.Report{SpecialSuiteFailureReasons: []string{"Interrupted by User"}, SpecReports: types.SpecReports{{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStateAborted, Failure: types.Failure{Message: "target: refused"}}}}, "target: refused", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Build([]types.Report{tt.run}, testCat(t), Input{})
			if !strings.Contains(r.SuiteError, tt.suiteError) || (tt.suiteError == "") != (r.SuiteError == "") {
				t.Errorf("suite error %q, want %q", r.SuiteError, tt.suiteError)
			}
			if got := strings.Join(r.Warnings, ";"); !strings.Contains(got, tt.warning) || (tt.warning == "") != (got == "") {
				t.Errorf("warnings %q, want %q", got, tt.warning)
			}
		})
	}
}

func TestBuildSuiteError(t *testing.T) {
	runs := []types.Report{{SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStateAborted, Failure: types.Failure{Message: "target: dial tcp 127.0.0.1:1: connection refused"}},
		spec("err text", types.SpecStateSkipped, "", "", "readonly", "req:V0001"),
	}}}
	r := Build(runs, testCat(t), Input{})
	if !strings.Contains(r.SuiteError, "connection refused") {
		t.Errorf("suite error %q", r.SuiteError)
	}
	if r.Statements[1].Verdict != verdict.NotRun {
		t.Errorf("V0001 %s, want not-run", r.Statements[1].Verdict)
	}
}

// TestNoSecretInAnyFormat writes every format and greps each file for the
// password, which the test data puts into a failure message and a
// transcript on purpose.
func TestNoSecretInAnyFormat(t *testing.T) {
	r := build(t)
	r.Observed["greeting"] = "+OK hello " + secret
	dir := t.TempDir()
	paths, err := Write(dir, Formats, r, Secrets{secret, ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(Formats) {
		t.Fatalf("wrote %v", paths)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("%s holds the password", filepath.Base(p))
		}
		if !bytes.Contains(data, []byte("2.1.1")) {
			t.Errorf("%s does not name statement 2.1.1", filepath.Base(p))
		}
	}
	if !strings.Contains(r.Statements[0].Specs[1].Reason, secret) {
		t.Error("Write must scrub a copy, not the caller's report")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := build(t)
	dir := t.TempDir()
	if _, err := Write(dir, []Format{JSON}, r, nil); err != nil {
		t.Fatal(err)
	}
	back, err := Load(filepath.Join(dir, JSON.FileName()))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Statements) != len(r.Statements) || back.Statements[0].Verdict != verdict.Deviates {
		t.Errorf("round trip lost statements: %+v", back.Statements)
	}
	var top map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, JSON.FileName()))
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"statements", "observed", "summary", "target", "tool", "start_time"} {
		if _, ok := top[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
}

func TestJUnit(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, JUnit, build(t)); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.String())
	}
	s := doc.Suites[0]
	if s.Tests != 7 || s.Failures != 2 || s.Skipped != 4 || s.Errors != 0 {
		t.Errorf("tests %d failures %d skipped %d errors %d", s.Tests, s.Failures, s.Skipped, s.Errors)
	}
	c := s.Cases[0]
	if c.Failure == nil || !strings.Contains(c.Failure.Text, "C: PASS <redacted>") {
		t.Errorf("2.1.1 failure lacks the transcript: %+v", c.Failure)
	}
	if c := s.Cases[2]; c.Skipped == nil || !strings.Contains(c.Skipped.Message, "--slow") {
		t.Errorf("V0002 should be skipped with the flag that enables it: %+v", c.Skipped)
	}

	// A deviation the --expect baseline accepts fails no CI gate.
	r := build(t)
	r.Statements[0].Accepted, r.Statements[0].AcceptedReason = true, "known TAB handling"
	buf.Reset()
	if err := Encode(&buf, JUnit, r); err != nil {
		t.Fatal(err)
	}
	doc = junitSuites{}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	s = doc.Suites[0]
	c = s.Cases[0]
	if s.Failures != 1 || c.Failure != nil || c.Skipped == nil || !strings.Contains(c.Skipped.Message, "accepted by the baseline: known TAB handling") || !strings.Contains(c.SystemOut, "C: PASS <redacted>") {
		t.Errorf("accepted 2.1.1: failures %d, case %+v", s.Failures, c)
	}
}

func TestHTMLSelfContained(t *testing.T) {
	r := build(t)
	r.Statements[0].Specs[1].Transcript = `S: +OK <script>alert(1)</script>`
	var buf bytes.Buffer
	if err := Encode(&buf, HTML, r); err != nil {
		t.Fatal(err)
	}
	h := buf.String()
	for _, bad := range []string{"<script", "src=", `href="http`, "@import", "url("} {
		if strings.Contains(h, bad) {
			t.Errorf("HTML holds %q: it must be one file without scripts or external assets", bad)
		}
	}
	if !strings.Contains(h, "&lt;script&gt;") {
		t.Error("server text must be escaped")
	}
}

func TestMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, Markdown, build(t)); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{"## Deviations", "### 2.1.1", "| V0001 | MS-STANXPOP3 |", "C: PASS &lt;redacted&gt;",
		"- **Certificate:** CN=mail.example.org, issued by CN=Example CA, names mail.example.org, valid until 2027-11-25, TLS 1.3 (verified)"} {
		if !strings.Contains(md, want) && !strings.Contains(md, strings.ReplaceAll(want, "&lt;redacted&gt;", "<redacted>")) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestParseFormats(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"json,yaml,md,html,junit", "json yaml md html junit", false},
		{"JSON, markdown ,json", "json md", false},
		{"yml,xml", "yaml junit", false},
		{"pdf", "", true},
		{"", "", true},
		{",", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormats(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			var s []string
			for _, f := range got {
				s = append(s, string(f))
			}
			if strings.Join(s, " ") != tt.want {
				t.Errorf("got %q, want %q", s, tt.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	mk := func(obs map[string]any, kv ...string) *Report {
		r := &Report{Observed: obs}
		for i := 0; i < len(kv); i += 2 {
			r.Statements = append(r.Statements, Statement{ID: kv[i], Verdict: verdict.Verdict(kv[i+1])})
		}
		return r
	}
	old := mk(map[string]any{"max_command_octets": 512.0, "greeting": "+OK"},
		"A", "conformant", "B", "deviates", "C", "conformant", "D", "not-run", "E", "deviates", "G", "conformant")
	cur := mk(map[string]any{"max_command_octets": 255.0, "greeting": "+OK"},
		"A", "deviates", "B", "conformant", "C", "conformant", "D", "conformant", "E", "error", "F", "deviates")
	d := Compare(old, cur)
	tests := []struct {
		id   string
		kind ChangeKind
	}{
		{"A", Regressed}, {"B", Fixed}, {"D", Changed}, {"E", Changed}, {"F", Regressed}, {"G", Changed},
	}
	if len(d.Changes) != len(tests) {
		t.Fatalf("changes %+v", d.Changes)
	}
	for i, tt := range tests {
		if c := d.Changes[i]; c.ID != tt.id || c.Kind != tt.kind {
			t.Errorf("change %d: got %s %s, want %s %s", i, c.ID, c.Kind, tt.id, tt.kind)
		}
	}
	if d.Regressions() != 2 {
		t.Errorf("regressions %d, want 2", d.Regressions())
	}
	if len(d.Params) != 1 || d.Params[0].Key != "max_command_octets" {
		t.Errorf("params %+v", d.Params)
	}
	var buf bytes.Buffer
	if err := d.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "2 regressed, 1 fixed, 3 other changes, 1 parameter moved") {
		t.Errorf("text:\n%s", buf.String())
	}
}

// TestDiffTextAlignsAndNeverNil: a long RFC rule ID and a parameter one
// report lacks must neither push the columns apart nor print Go's <nil>.
func TestDiffTextAlignsAndNeverNil(t *testing.T) {
	old := &Report{Observed: map[string]any{"gone": 3.0},
		Statements: []Statement{{ID: "V0001", Verdict: verdict.Conformant}, {ID: "RFC1939-3-cmd-arg-sep-long-name", Verdict: verdict.Conformant}}}
	cur := &Report{Observed: map[string]any{"new_key": "x"},
		Statements: []Statement{{ID: "V0001", Verdict: verdict.Deviates}, {ID: "RFC1939-3-cmd-arg-sep-long-name", Verdict: verdict.Deviates}}}
	var buf bytes.Buffer
	if err := Compare(old, cur).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if strings.Contains(text, "<nil>") || strings.Count(text, "(absent)") != 2 {
		t.Errorf("absent values not shown as (absent):\n%s", text)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	col := -1
	for _, l := range lines[:len(lines)-1] {
		// The third column starts at the same offset on every line.
		f := strings.Fields(l)
		at := strings.Index(l[len(f[0]):], f[2]) + len(f[0])
		if col >= 0 && at != col {
			t.Errorf("columns misaligned:\n%s", text)
			break
		}
		col = at
	}
	if !strings.HasSuffix(text, "2 regressed, 0 fixed, 0 other changes, 2 parameters moved\n") {
		t.Errorf("summary line:\n%s", text)
	}
}

func TestScrubShortSecretKeepsStructure(t *testing.T) {
	r := build(t)
	dir := t.TempDir()
	// A two-letter password is scrubbed from values but not byte-wise, so
	// the JSON stays valid.
	if _, err := Write(dir, []Format{JSON}, r, Secrets{"ta"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, JSON.FileName())); err != nil {
		t.Fatal(err)
	}
}

// TestStatementExpectedAndObserved checks that a statement carries the
// profile's values for its keys and, once parameters are measured, the
// measured ones beside them, in the JSON and the Markdown.
func TestStatementExpectedAndObserved(t *testing.T) {
	r := Build(testRuns(t), testCat(t), Input{Tool: Tool{Name: "probe", Version: "test"}, Profile: "exchange2010"})
	r.SetObserved(&Observed{Params: map[string]any{"separators": "single-space", "lock": "none"}})
	var st Statement
	for _, s := range r.Statements {
		if s.ID == "2.1.1" {
			st = s
		}
	}
	if got := st.ExpectedText(); got != "separators=space-or-tab" {
		t.Errorf("expected %q, want separators=space-or-tab", got)
	}
	if got := st.ObservedText(); got != "separators=single-space" {
		t.Errorf("observed %q, want separators=single-space (and nothing the statement does not depend on)", got)
	}
	for _, s := range r.Statements {
		if s.ID == "V0001" && (s.Expected != nil || s.Observed != nil) {
			t.Errorf("V0001 names no profile key, yet has expected %v, observed %v", s.Expected, s.Observed)
		}
	}
	var buf bytes.Buffer
	if err := Encode(&buf, Markdown, r); err != nil {
		t.Fatal(err)
	}
	if want := "Profile expects: separators=space-or-tab; measured: separators=single-space"; !strings.Contains(buf.String(), want) {
		t.Errorf("markdown lacks %q", want)
	}
	buf.Reset()
	if err := Encode(&buf, JSON, r); err != nil {
		t.Fatal(err)
	}
	if want := `"expected":{"separators":"space-or-tab"}`; !strings.Contains(strings.Join(strings.Fields(buf.String()), ""), want) {
		t.Errorf("JSON lacks %s", want)
	}
}

// TestIndexNoteAndExpected: both readable reports lead with an index of
// the deviating statements linked to their rows, a conformant statement
// with a moot spec says so, and Markdown rows show expected/measured
// whatever the verdict.
func TestIndexNoteAndExpected(t *testing.T) {
	r := build(t)
	for i := range r.Statements {
		if r.Statements[i].ID == "V0001" {
			r.Statements[i].Expected = map[string]any{"err_text": true}
			r.Statements[i].Observed = map[string]any{"err_text": true}
		}
	}
	if st := statementByID(t, r, "V0001"); !strings.HasPrefix(st.Note, "1 spec not applicable: the server sends no text") {
		t.Errorf("V0001 note %q", st.Note)
	}
	encode := func(f Format) string {
		var buf bytes.Buffer
		if err := Encode(&buf, f, r); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	md := encode(Markdown)
	for _, want := range []string{
		"## Deviations index",
		"- [2.1.1](#2.1.1) ❌ **deviates**: separators",
		"- [RFC1939-3-keywords](#RFC1939-3-keywords) ❌ **deviates**",
		`| <a id="2.1.1"></a>2.1.1 |`,
		`| <a id="RFC1939-3-keywords"></a>RFC1939-3-keywords |`,
		"✅ conformant (1 spec not applicable: the server sends no text",
		"expected err_text=true; measured err_text=true |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	if strings.Index(md, "## Deviations index") > strings.Index(md, "## Summary") {
		t.Error("the Markdown index does not come before the summary")
	}
	page := encode(HTML)
	for _, want := range []string{
		`<h2 id="deviations">Deviations index</h2>`,
		`<li><a href="#2.1.1">2.1.1</a>`,
		`<li><a href="#RFC1939-3-keywords">RFC1939-3-keywords</a>`,
		`<tr class="v-deviates" id="RFC1939-3-keywords">`,
		`conformant<br><small class="note">1 spec not applicable: the server sends no text`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Index(page, "Deviations index") > strings.Index(page, "<h2>Summary</h2>") {
		t.Error("the HTML index does not come before the summary")
	}
}

func statementByID(t *testing.T, r *Report, id string) Statement {
	t.Helper()
	for _, st := range r.Statements {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("no statement %s", id)
	return Statement{}
}
