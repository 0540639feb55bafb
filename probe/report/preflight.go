package report

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// PreflightFile is the one report a run writes when the suite never
// started (no connection, an untrusted certificate, a refused login).
const PreflightFile = "report.md"

// WritePreflight writes the short report of a run whose suite never
// started: the target and why, in Markdown, and nothing else. A report of
// every statement "not run" would only bury the one line that matters.
// Reports of an earlier run in dir are removed first, so no stale verdicts
// sit next to the error. It returns the path written.
func WritePreflight(dir string, r *Report, secrets Secrets) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("report directory: %w", err)
	}
	for _, f := range Formats {
		if err := os.Remove(filepath.Join(dir, f.FileName())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("removing the earlier report: %w", err)
		}
	}
	if err := os.Remove(filepath.Join(dir, ObservedProfileFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("removing the earlier observed profile: %w", err)
	}
	clean, err := scrubbedCopy(r, secrets)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := writePreflightMarkdown(&buf, clean); err != nil {
		return "", err
	}
	p := filepath.Join(dir, PreflightFile)
	if err := os.WriteFile(p, secrets.Bytes(buf.Bytes()), 0o644); err != nil {
		return "", fmt.Errorf("writing the preflight report: %w", err)
	}
	return p, nil
}

func writePreflightMarkdown(w io.Writer, r *Report) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# POP3 conformance report: the suite did not start\n\n")
	writeIdentityMarkdown(p, r)
	p("\n> **Before any spec:** %s\n\n", mdInline(r.SuiteError))
	p("No spec ran and no statement was judged, so this run wrote no other report. Fix what the message names and run again.\n")
	return b.Flush()
}
