package conformance

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pop3conformance/pop3conformance/model/catalog"
)

// specIDs reads the requirement IDs named in IDs(...) calls of the
// package's spec files. Reading the source, rather than running the tree,
// keeps this a plain test that needs no server.
func specIDs(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := map[string][]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != "IDs" {
				return true
			}
			for _, arg := range call.Args {
				lit, ok := arg.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Errorf("%s: IDs takes string literals only, so coverage can be read from the source", fset.Position(arg.Pos()))
					continue
				}
				s, _ := strconv.Unquote(lit.Value)
				found[s] = append(found[s], fset.Position(lit.Pos()).String())
			}
			return true
		})
	}
	return found
}

func TestEveryRequirementHasASpec(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	found := specIDs(t)
	var missing []string
	for _, r := range cat.Requirements {
		if r.Verification == catalog.NotObservable {
			continue // the catalogue's reason stands in for a spec
		}
		if len(found[r.ID]) == 0 {
			missing = append(missing, r.ID)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d catalogue entries have no spec: %s", len(missing), strings.Join(missing, ", "))
	}
}

func TestEverySpecNamesAKnownRequirement(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	var unknown []string
	for id, where := range specIDs(t) {
		if _, ok := cat.Lookup(id); !ok {
			unknown = append(unknown, id+" ("+strings.Join(where, ", ")+")")
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("specs name requirements that are not in the catalogue: %s", strings.Join(unknown, "; "))
	}
}
