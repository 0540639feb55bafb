// Command judge reads the Ginkgo JSON reports of run-suite.sh, the
// conformance suite against Dovecot:
//
//	judge check EXPECTED REPORT...   compare the failing specs with
//	                                 expected-deviations.yaml; exit 1
//	                                 unless they are exactly the listed ones
//	judge mutating REPORT            list the mutating specs of a dry run as
//	                                 Ginkgo focus expressions, one a line
//
// A spec's outcome is model/verdict's reading of its state, the one the
// probe's report uses, and its requirements and class come from its labels
// as model/contract names them.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/onsi/ginkgo/v2/types"
)

func main() {
	if err := command(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "judge:", err)
		os.Exit(1)
	}
}

func command(args []string, out io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: judge check EXPECTED REPORT... | judge mutating REPORT")
	}
	switch args[0] {
	case "check":
		if len(args) < 3 {
			return fmt.Errorf("usage: judge check EXPECTED REPORT...")
		}
		want, err := loadExpected(args[1])
		if err != nil {
			return err
		}
		var runs []run
		for _, path := range args[2:] {
			reps, err := loadReports(path)
			if err != nil {
				return err
			}
			runs = append(runs, run{path, reps})
		}
		j := judge(want, runs)
		j.print(out)
		if !j.ok() {
			return fmt.Errorf("the failing specs are not the expected deviations")
		}
		return nil
	case "mutating":
		reps, err := loadReports(args[1])
		if err != nil {
			return err
		}
		for _, text := range mutatingSpecs(reps) {
			// Ginkgo's focus is a Go regular expression over the text.
			fmt.Fprintln(out, regexp.QuoteMeta(text))
		}
		return nil
	}
	return fmt.Errorf("unknown command %q (check, mutating)", args[0])
}

func loadReports(path string) ([]types.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the Ginkgo report: %w", err)
	}
	var reps []types.Report
	if err := json.Unmarshal(data, &reps); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reps, nil
}
