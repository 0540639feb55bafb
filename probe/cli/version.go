package cli

import (
	"regexp"
	"runtime/debug"
	"strings"
)

// Version says what the binary was built from, for `pop3probe version`
// and the report's tool version: the module version when it was
// installed with `go install …@vX.Y.Z` (or a pseudo-version), otherwise
// "devel" with the VCS revision, "-dirty" for uncommitted changes and
// the commit time.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return versionOf(bi)
}

// pseudoVersion matches the tail Go gives versions of untagged commits
// (vX.Y.Z-yyyymmddhhmmss-abcdefabcdef).
var pseudoVersion = regexp.MustCompile(`\d{14}-[0-9a-f]{12}(\+incompatible)?$`)

// release reports whether v names a tagged version, not a pseudo-version
// or a local build's stamp (v…+dirty, "(devel)").
func release(v string) bool {
	return strings.HasPrefix(v, "v") && !strings.Contains(v, "+dirty") && !pseudoVersion.MatchString(v)
}

func versionOf(bi *debug.BuildInfo) string {
	var rev, modified, when string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		case "vcs.time":
			when = s.Value
		}
	}
	v := bi.Main.Version
	if rev == "" {
		// Built from a module zip (go install …@version) or with
		// -buildvcs=false: the module version is all there is.
		if v == "" || v == "(devel)" {
			return "devel"
		}
		return v
	}
	if !release(v) {
		v = "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v += " " + rev
	if modified == "true" {
		v += "-dirty"
	}
	if when != "" {
		v += " " + when
	}
	return v
}
