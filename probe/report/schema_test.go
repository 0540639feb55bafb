package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pop3conformance/pop3conformance/model/verdict"
)

// The JSON Schema of report.json is checked without a schema library: a
// small walker enforces the keywords the schema uses (type, required,
// properties, additionalProperties, items, enum, const, $ref into $defs)
// and fails on any other keyword, so the schema cannot grow a rule this
// check silently ignores.

const (
	schemaPath = "../../reports/schema/report.schema.json"
	samplePath = "../../reports/sample/report.json"
)

type schemaChecker struct {
	root map[string]any
	errs []string
}

// known lists the keywords the checker understands; annotations are
// allowed and ignored.
var (
	known       = []string{"type", "required", "properties", "additionalProperties", "items", "enum", "const", "$ref", "minimum"}
	annotations = []string{"$schema", "$id", "title", "description", "format", "$defs"}
)

func (c *schemaChecker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, path+": "+fmt.Sprintf(format, args...))
}

func (c *schemaChecker) check(path string, schema map[string]any, v any) {
	for k := range schema {
		if !slices.Contains(known, k) && !slices.Contains(annotations, k) {
			c.fail(path, "schema keyword %q is not checked by this test", k)
		}
	}
	if ref, ok := schema["$ref"].(string); ok {
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		def, _ := c.root["$defs"].(map[string]any)[name].(map[string]any)
		if !ok || def == nil {
			c.fail(path, "unresolved $ref %q", ref)
			return
		}
		c.check(path, def, v)
	}
	if t, ok := schema["type"]; ok {
		var types []string
		switch x := t.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, e := range x {
				types = append(types, e.(string))
			}
		}
		if !slices.ContainsFunc(types, func(t string) bool { return hasType(v, t) }) {
			c.fail(path, "want %s, got %T", strings.Join(types, " or "), v)
			return
		}
	}
	if e, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, v) }) {
		c.fail(path, "%v is not one of %v", v, e)
	}
	if k, ok := schema["const"]; ok && !reflect.DeepEqual(k, v) {
		c.fail(path, "%v is not %v", v, k)
	}
	if m, ok := schema["minimum"].(float64); ok {
		if n, isNum := v.(float64); isNum && n < m {
			c.fail(path, "%v is below the minimum %v", v, m)
		}
	}
	if obj, ok := v.(map[string]any); ok {
		if req, ok := schema["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[r.(string)]; !ok {
					c.fail(path, "required property %q is missing", r)
				}
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, pv := range obj {
			if ps, ok := props[k].(map[string]any); ok {
				c.check(path+"."+k, ps, pv)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					c.fail(path, "property %q is not allowed", k)
				}
			case map[string]any:
				c.check(path+"."+k, ap, pv)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if is, ok := schema["items"].(map[string]any); ok {
			for i, e := range arr {
				c.check(fmt.Sprintf("%s[%d]", path, i), is, e)
			}
		}
	}
}

func hasType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	case "null":
		return v == nil
	}
	return false
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("schema: %v", err)
	}
	return s
}

// validate checks a JSON document against the schema.
func validate(schema map[string]any, doc []byte) []string {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return []string{err.Error()}
	}
	c := &schemaChecker{root: schema}
	c.check("$", schema, v)
	return c.errs
}

// freshReport is a report as the probe builds it now, observations and
// both profile comparisons included.
func freshReport(t *testing.T) []byte {
	t.Helper()
	r := build(t)
	r.SetObserved(&Observed{
		Params: map[string]any{
			"max_command_octets": 512, "max_command_octets_bound": "exact", "separators": "space-or-tab",
			"sasl": []string{"NTLM", "PLAIN"}, "lock": "none", "uid.format": "decimal-increasing", "exact_sizes": false,
		},
		Observation: Observation{Seconds: 0.2, Connections: 20, Methods: map[string]string{"lock": "two logins"},
			NotMeasured: map[string]string{"max_argument_chars": "x"}, Evidence: map[string]string{"lock": "C: USER a"}},
		Profiles: []ProfileMatch{{Name: "exchange2010", Chosen: true, Compared: 7, Matching: 6,
			Differences: []ProfileDifference{{Key: "max_command_octets", Observed: 1024, Profile: 512}}}},
	})
	r.ClosestProfileBy = ClosestByParameters
	// A baseline that accepts one deviation and lists one passing
	// statement, so the schema sees every field of expect.
	b := &Baseline{File: "baseline.txt"}
	for _, st := range r.Statements {
		if bad(st.Verdict) && len(b.Entries) == 0 {
			b.Entries = append(b.Entries, BaselineEntry{ID: st.ID, Reason: "known"})
		}
	}
	if i := slices.IndexFunc(r.Statements, func(st Statement) bool { return st.Verdict == verdict.Conformant }); i >= 0 {
		b.Entries = append(b.Entries, BaselineEntry{ID: r.Statements[i].ID})
	}
	r.ApplyBaseline(b)
	if r.Expect == nil || len(r.Expect.Accepted) != 1 || len(r.Expect.Fixed) != 1 {
		t.Fatalf("the baseline did not apply: %+v", r.Expect)
	}
	counts := newCounts()
	counts["conformant"] = 7
	r.SetProfileScores([]ProfileScore{{Name: "rfc1939", Counts: counts}, {Name: "dovecot", Error: "no report"}})
	var buf bytes.Buffer
	if err := Encode(&buf, JSON, r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSchemaValidatesReports(t *testing.T) {
	schema := loadSchema(t)
	sample, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"sample": sample, "fresh": freshReport(t)} {
		t.Run(name, func(t *testing.T) {
			if errs := validate(schema, doc); len(errs) > 0 {
				t.Errorf("%d schema errors:\n%s", len(errs), strings.Join(errs, "\n"))
			}
		})
	}
}

// TestSchemaCatchesBrokenReports proves the check has teeth: each broken
// report must fail with the expected complaint.
func TestSchemaCatchesBrokenReports(t *testing.T) {
	schema := loadSchema(t)
	tests := []struct {
		name   string
		break_ func(m map[string]any)
		want   string
	}{
		{"no statements", func(m map[string]any) { delete(m, "statements") }, `required property "statements"`},
		{"no observed", func(m map[string]any) { delete(m, "observed") }, `required property "observed"`},
		{"statement without verdict", func(m map[string]any) {
			delete(m["statements"].([]any)[0].(map[string]any), "verdict")
		}, `$.statements[0]: required property "verdict"`},
		{"statement without id", func(m map[string]any) {
			delete(m["statements"].([]any)[1].(map[string]any), "id")
		}, `$.statements[1]: required property "id"`},
		{"unknown verdict", func(m map[string]any) {
			m["statements"].([]any)[0].(map[string]any)["verdict"] = "passed"
		}, "is not one of"},
		{"observed not an object", func(m map[string]any) { m["observed"] = []any{} }, "$.observed: want object"},
		{"command length as text", func(m map[string]any) {
			m["observed"].(map[string]any)["max_command_octets"] = "512"
		}, "$.observed.max_command_octets: want integer"},
		{"count missing", func(m map[string]any) {
			delete(m["summary"].(map[string]any)["counts"].(map[string]any), "deviates")
		}, `required property "deviates"`},
		{"profile difference without key", func(m map[string]any) {
			d := m["profiles"].([]any)[0].(map[string]any)["differences"].([]any)[0].(map[string]any)
			delete(d, "key")
		}, `required property "key"`},
		{"wrong schema version", func(m map[string]any) { m["schema_version"] = 2.0 }, "is not 1"},
		{"certificate without verified", func(m map[string]any) {
			delete(m["target"].(map[string]any)["certificate"].(map[string]any), "verified")
		}, `$.target.certificate: required property "verified"`},
		{"profile score without name", func(m map[string]any) {
			delete(m["profile_scores"].([]any)[0].(map[string]any), "name")
		}, `$.profile_scores[0]: required property "name"`},
		{"profile score count missing", func(m map[string]any) {
			delete(m["profile_scores"].([]any)[0].(map[string]any)["counts"].(map[string]any), "conformant")
		}, `$.profile_scores[0].counts: required property "conformant"`},
		{"closest by something else", func(m map[string]any) { m["closest_profile_by"] = "votes" }, "is not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(freshReport(t), &m); err != nil {
				t.Fatal(err)
			}
			tt.break_(m)
			doc, _ := json.Marshal(m)
			errs := validate(schema, doc)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) }) {
				t.Errorf("want an error containing %q, got %q", tt.want, errs)
			}
		})
	}
}

// TestSchemaRequiresWhatTheIssueAsks pins the contract of issue 7: the
// top level has statements (id, verdict) and observed.
func TestSchemaRequiresWhatTheIssueAsks(t *testing.T) {
	s := loadSchema(t)
	req := s["required"].([]any)
	for _, k := range []string{"statements", "observed"} {
		if !slices.Contains(req, any(k)) {
			t.Errorf("top level does not require %s", k)
		}
	}
	items := s["properties"].(map[string]any)["statements"].(map[string]any)["items"].(map[string]any)
	for _, k := range []string{"id", "verdict"} {
		if !slices.Contains(items["required"].([]any), any(k)) {
			t.Errorf("statements do not require %s", k)
		}
	}
	if _, err := os.Stat(filepath.Clean(schemaPath)); err != nil {
		t.Fatal(err)
	}
}
