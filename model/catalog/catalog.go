// Package catalog loads the requirement catalogue: every statement of
// MS-STANXPOP3 and every RFC rule it refers to, each with a stable ID.
// Specs name these IDs in their labels; the catalogue is the single list
// the suite, the probe and the reports agree on.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
)

// Verification says how a requirement can be checked.
type Verification string

const (
	// Wire: any account on any server shows it.
	Wire Verification = "wire"
	// WireWithFixtures: needs known mail, a second account or a second
	// session.
	WireWithFixtures Verification = "wire-with-fixtures"
	// ReferenceOnly: needs server-side control (clock, configuration,
	// delivery during a session, fault injection); only the bundled
	// reference server can be judged.
	ReferenceOnly Verification = "reference-only"
	// NotObservable: a client cannot see it over POP3; Reason says why.
	NotObservable Verification = "not-observable"
)

// Requirement is one testable statement.
type Requirement struct {
	ID      string `yaml:"id"`
	Source  string `yaml:"source"`  // e.g. "MS-STANXPOP3", "RFC 1939"
	Section string `yaml:"section"` // e.g. "2.2.8", "7"
	Summary string `yaml:"summary"` // one line, in the project's words
	Level   string `yaml:"level"`   // MUST, SHOULD, MAY, RULE or INFO
	// ProfileKeys name the profile keys (YAML names, dotted for nested
	// ones) that decide what is expected.
	ProfileKeys  []string     `yaml:"profile_keys,omitempty"`
	Verification Verification `yaml:"verification"`
	// Reason explains a not-observable or reference-only verification
	// (required for not-observable); elsewhere it notes what part of the
	// statement needs more than the verification kind says.
	Reason string `yaml:"reason,omitempty"`
	// RefersTo lists the IDs of the rules a statement varies or clarifies.
	RefersTo []string `yaml:"refers_to,omitempty"`
}

// Catalog is the loaded catalogue, in file order.
type Catalog struct {
	Requirements []Requirement `yaml:"requirements"`
	byID         map[string]int
}

// idPattern keeps IDs usable inside Ginkgo labels, which may not hold
// &|!,()/ and are trimmed of white space.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.:_-]*$`)

var levels = map[string]bool{"MUST": true, "SHOULD": true, "MAY": true, "RULE": true, "INFO": true}

// Load reads the catalogue embedded in the fixtures package.
func Load() (*Catalog, error) {
	data, err := fs.ReadFile(fixtures.FS, "requirements.yaml")
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return Parse(data)
}

// MustLoad is Load for package initialisation, where the embedded file
// being broken is a build defect.
func MustLoad() *Catalog {
	c, err := Load()
	if err != nil {
		panic(err)
	}
	return c
}

// Parse decodes and validates a catalogue.
func Parse(data []byte) (*Catalog, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("catalog: decode: %w", err)
	}
	if err := c.index(); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return &c, nil
}

func (c *Catalog) index() error {
	keys := profileKeys()
	c.byID = make(map[string]int, len(c.Requirements))
	var errs []error
	for i, r := range c.Requirements {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("requirement %d (%s): %s", i+1, r.ID, fmt.Sprintf(format, args...)))
		}
		if !idPattern.MatchString(r.ID) {
			bad("id %q is empty or holds characters a Ginkgo label cannot", r.ID)
		}
		if _, dup := c.byID[r.ID]; dup {
			bad("duplicate id")
		}
		c.byID[r.ID] = i
		if r.Source == "" || r.Section == "" || r.Summary == "" {
			bad("source, section and summary are required")
		}
		if !levels[r.Level] {
			bad("level %q is not MUST, SHOULD, MAY, RULE or INFO", r.Level)
		}
		switch r.Verification {
		case Wire, WireWithFixtures, ReferenceOnly:
		case NotObservable:
			if strings.TrimSpace(r.Reason) == "" {
				bad("not-observable needs a reason")
			}
		default:
			bad("verification %q is not wire, wire-with-fixtures, reference-only or not-observable", r.Verification)
		}
		for _, k := range r.ProfileKeys {
			if !keys[k] {
				bad("profile key %q does not exist", k)
			}
		}
	}
	for _, r := range c.Requirements {
		for _, ref := range r.RefersTo {
			if _, ok := c.byID[ref]; !ok {
				errs = append(errs, fmt.Errorf("requirement %s: refers_to names unknown id %q", r.ID, ref))
			}
		}
	}
	return errors.Join(errs...)
}

// Lookup returns the requirement with id.
func (c *Catalog) Lookup(id string) (Requirement, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Requirement{}, false
	}
	return c.Requirements[i], true
}

// IDs returns every id in file order.
func (c *Catalog) IDs() []string {
	ids := make([]string, len(c.Requirements))
	for i, r := range c.Requirements {
		ids[i] = r.ID
	}
	return ids
}

// profileKeys lists the YAML keys of profile.Profile, nested ones dotted
// ("timers.notice"), so the catalogue cannot name a key that is not there.
func profileKeys() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			keys[prefix+name] = true
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() && f.Type.Name() != "Duration" {
				walk(f.Type, prefix+name+".")
			}
		}
	}
	walk(reflect.TypeOf(profile.Profile{}), "")
	return keys
}

// ProfileKeys returns the valid profile keys, sorted; for documentation.
func ProfileKeys() []string {
	var out []string
	for k := range profileKeys() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
