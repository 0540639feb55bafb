package report

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/onsi/ginkgo/v2/types"
)

// LoadGinkgo reads a `ginkgo --json-report` file: a JSON array with one
// types.Report per suite.
func LoadGinkgo(path string) ([]types.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var runs []types.Report
	if err := json.Unmarshal(data, &runs); err != nil {
		return nil, fmt.Errorf("%s: not a ginkgo JSON report: %w", path, err)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s: the ginkgo JSON report holds no suite", path)
	}
	return runs, nil
}
