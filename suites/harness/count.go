package harness

import (
	"strconv"
	"strings"
)

// Count shows n with its noun, singular for one: "1 message",
// "3 messages". Every count the suite or the probe prints goes through it
// so that no "1 messages" reaches a report.
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + plural(noun)
}

// plural knows the English rules the suite's nouns need: "reply" ->
// "replies", "message" -> "messages".
func plural(noun string) string {
	if base, ok := strings.CutSuffix(noun, "y"); ok && base != "" && !strings.ContainsAny(base[len(base)-1:], "aeiou") {
		return base + "ies"
	}
	return noun + "s"
}
