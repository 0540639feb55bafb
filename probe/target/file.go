package target

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// notInFile are the keys of a Target's YAML that a targets file entry
// must not have, and why: the file names passwords instead of holding
// them, and the rest are the run's, not a server's.
func notInFile(key string) (why string, refused bool) {
	switch key {
	case "password", "password2":
		return "a targets file names a password with " + key + "_env or " + key + "_file", true
	case "reference_profile":
		return "--reference-profile applies to the bundled server only", true
	case "allow":
		return "the --allow-* flags apply to every target", true
	}
	return "", false
}

// CheckFileEntry refuses the keys of one targets file entry (a YAML
// mapping) that a Target's YAML has but a targets file must not.
func CheckFileEntry(entry *yaml.Node) error {
	if entry.Kind != yaml.MappingNode {
		return nil // the decoder says what is wrong with it
	}
	for i := 0; i+1 < len(entry.Content); i += 2 {
		k := entry.Content[i]
		if why, refused := notInFile(k.Value); refused {
			return fmt.Errorf("line %d: field %s not found: %s", k.Line, k.Value, why)
		}
	}
	return nil
}
