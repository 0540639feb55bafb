package report

import (
	"bytes"
	"reflect"
	"strings"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// Redacted replaces a secret wherever it appears, as in the harness's
// transcripts.
const Redacted = harness.Redacted

// minBytesSecret is the shortest secret scrubbed from encoded output too:
// replacing a one- or two-character password byte-wise would mangle the
// document, and Scrub has already removed it from every string value.
const minBytesSecret = 4

// Secrets are values that must never appear in any output.
type Secrets []string

// clean drops empty entries.
func (s Secrets) clean() []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// String replaces every secret in v.
func (s Secrets) String(v string) string {
	for _, sec := range s.clean() {
		v = strings.ReplaceAll(v, sec, Redacted)
	}
	return v
}

// Bytes replaces every secret of a useful length in encoded output: a
// second line of defence behind Scrub, for anything that slipped past it.
func (s Secrets) Bytes(b []byte) []byte {
	for _, sec := range s.clean() {
		if len(sec) >= minBytesSecret {
			b = bytes.ReplaceAll(b, []byte(sec), []byte(Redacted))
		}
	}
	return b
}

// Scrub replaces the secrets in every string the report holds. The
// harness redacts transcripts already; this also covers failure messages
// that quote a server's echo, and values of Observed.
func (s Secrets) Scrub(r *Report) {
	if len(s.clean()) == 0 {
		return
	}
	s.walk(reflect.ValueOf(r).Elem())
}

func (s Secrets) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(s.String(v.String()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			s.walk(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				s.walk(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			s.walk(v.Index(i))
		}
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		// Values inside an interface are not addressable: copy, scrub, put back.
		c := reflect.New(v.Elem().Type()).Elem()
		c.Set(v.Elem())
		s.walk(c)
		if v.CanSet() {
			v.Set(c)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := v.MapIndex(k)
			c := reflect.New(e.Type()).Elem()
			c.Set(e)
			s.walk(c)
			nk := k
			if k.Kind() == reflect.String {
				nk = reflect.ValueOf(s.String(k.String())).Convert(k.Type())
				if nk.String() != k.String() {
					v.SetMapIndex(k, reflect.Value{})
				}
			}
			v.SetMapIndex(nk, c)
		}
	}
}

// ScrubValue replaces the secrets in every string reachable from ptr, a
// pointer to any value (a profile to be written as YAML, for instance).
func (s Secrets) ScrubValue(ptr any) {
	if len(s.clean()) == 0 {
		return
	}
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	s.walk(v.Elem())
}
