package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Format is an output format of the report.
type Format string

const (
	JSON     Format = "json"
	YAML     Format = "yaml"
	Markdown Format = "md"
	HTML     Format = "html"
	JUnit    Format = "junit"
)

// Formats lists every format in the order they are written.
var Formats = []Format{JSON, YAML, Markdown, HTML, JUnit}

// FileName is the name a format is written to inside the output directory.
func (f Format) FileName() string {
	switch f {
	case JUnit:
		return "report.junit.xml"
	default:
		return "report." + string(f)
	}
}

// ParseFormats reads a comma-separated list such as "json,md".
func ParseFormats(s string) ([]Format, error) {
	var out []Format
	for _, part := range strings.Split(s, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		switch part {
		case "":
			continue
		case "markdown":
			part = string(Markdown)
		case "yml":
			part = string(YAML)
		case "xml":
			part = string(JUnit)
		}
		f := Format(part)
		if !slices.Contains(Formats, f) {
			return nil, fmt.Errorf("format %q: use a comma-separated list of json, yaml, md, html, junit", part)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no format given: use a comma-separated list of json, yaml, md, html, junit")
	}
	return out, nil
}

// Encode writes r in format f to w.
func Encode(w io.Writer, f Format, r *Report) error {
	switch f {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case YAML:
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(r); err != nil {
			return err
		}
		return enc.Close()
	case Markdown:
		return writeMarkdown(w, r)
	case HTML:
		return writeHTML(w, r)
	case JUnit:
		return writeJUnit(w, r)
	}
	return fmt.Errorf("unknown format %q", f)
}

// Write writes r in every format into dir, creating it, and returns the
// paths written. The secrets are scrubbed from a copy of the report and,
// again, from the encoded bytes.
func Write(dir string, formats []Format, r *Report, secrets Secrets) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	clean, err := scrubbedCopy(r, secrets)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range formats {
		var buf bytes.Buffer
		if err := Encode(&buf, f, clean); err != nil {
			return paths, fmt.Errorf("encoding the %s report: %w", f, err)
		}
		p := filepath.Join(dir, f.FileName())
		if err := os.WriteFile(p, secrets.Bytes(buf.Bytes()), 0o644); err != nil {
			return paths, fmt.Errorf("writing the %s report: %w", f, err)
		}
		paths = append(paths, p)
	}
	if len(r.suggestedProfile) > 0 {
		p := filepath.Join(dir, ObservedProfileFile)
		if err := os.WriteFile(p, secrets.Bytes(r.suggestedProfile), 0o644); err != nil {
			return paths, fmt.Errorf("writing the observed profile: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// ObservedProfileFile is the name of the profile YAML built from the
// measured parameters, written next to the report.
const ObservedProfileFile = "observed-profile.yaml"

// scrubbedCopy deep-copies r through JSON so that scrubbing never touches
// the caller's report.
func scrubbedCopy(r *Report, secrets Secrets) (*Report, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("copying the report: %w", err)
	}
	var c Report
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("copying the report: %w", err)
	}
	secrets.Scrub(&c)
	return &c, nil
}

// Load reads a report the probe wrote as JSON.
func Load(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: not a probe JSON report: %w", path, err)
	}
	if r.SchemaVersion == 0 || r.Statements == nil {
		return nil, fmt.Errorf("%s: not a probe JSON report (no schema_version or statements)", path)
	}
	return &r, nil
}
