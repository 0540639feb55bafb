package main

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// profileFile writes p as the YAML file NAME.yaml in a temporary
// directory, for a probe's --profile or a server's, and returns its path.
func profileFile(t *testing.T, p *profile.Profile, name string) string {
	t.Helper()
	data, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
