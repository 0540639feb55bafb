package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pop3conformance/pop3conformance/model/catalog"
)

// TestCommandsAddUpAcrossProcesses: each process of a parallel run ends
// with its own "commands" entry; the report sums them and shows them.
func TestCommandsAddUpAcrossProcesses(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	node := func(v string) types.SpecReport {
		return types.SpecReport{LeafNodeType: types.NodeTypeAfterSuite, State: types.SpecStatePassed,
			ReportEntries: []types.ReportEntry{{Name: "commands", Value: types.WrapEntryValue(v)}}}
	}
	runs := []types.Report{{SpecReports: types.SpecReports{
		node(`{"sent":{"read":3,"login":2},"refused":{}}`),
		node(`{"sent":{"read":4,"dele":1},"refused":{"failed-login":1}}`),
	}}}
	r := Build(runs, cat, Input{})
	if r.Commands == nil {
		t.Fatal("no commands in the report")
	}
	if got := CountsText(r.Commands.Sent); got != "dele 1, login 2, read 7" {
		t.Errorf("sent %q", got)
	}
	if got := CountsText(r.Commands.Refused); got != "failed-login 1" {
		t.Errorf("refused %q", got)
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"**Allowed:** readonly only", "**Commands sent, by class:** dele 1, login 2, read 7", "failed-login 1"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}
