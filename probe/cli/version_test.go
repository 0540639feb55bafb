package cli

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2025-03-04T05:06:07Z"},
			{Key: "vcs.modified", Value: modified},
		}
	}
	for _, tc := range []struct {
		name     string
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"go install at a tag", "v1.2.3", nil, "v1.2.3"},
		{"go install at a pre-release tag", "v1.3.0-rc.1", nil, "v1.3.0-rc.1"},
		{"go install at a commit", "v0.0.0-20250304050607-0123456789ab", nil, "v0.0.0-20250304050607-0123456789ab"},
		{"built without VCS stamping", "(devel)", nil, "devel"},
		{"no version at all", "", nil, "devel"},
		{"clean checkout", "(devel)", vcs("false"), "devel 0123456789ab 2025-03-04T05:06:07Z"},
		{"modified checkout", "(devel)", vcs("true"), "devel 0123456789ab-dirty 2025-03-04T05:06:07Z"},
		{"checkout stamped with a pseudo-version", "v0.0.0-20250304050607-0123456789ab", vcs("false"), "devel 0123456789ab 2025-03-04T05:06:07Z"},
		{"modified checkout stamped +dirty", "v0.0.0-20250304050607-0123456789ab+dirty", vcs("true"), "devel 0123456789ab-dirty 2025-03-04T05:06:07Z"},
		{"checkout at a tag", "v1.2.3", vcs("false"), "v1.2.3 0123456789ab 2025-03-04T05:06:07Z"},
		{"revision without time", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "devel abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Path: "example.org/pop3conformance", Version: tc.version}, Settings: tc.settings}
			if got := versionOf(bi); got != tc.want {
				t.Errorf("versionOf = %q, want %q", got, tc.want)
			}
		})
	}
}
