package server

import (
	"bufio"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/fixtures"
	"github.com/pop3conformance/pop3conformance/model/profile"
)

// exchangeStep is one line of a replay file (fixtures/exchange/README.md).
type exchangeStep struct {
	client bool
	line   string
	lineNo int
}

// exchangeScript is one replay file: its profile changes, whether it
// talks over TLS, and its lines.
type exchangeScript struct {
	tls   bool
	set   []string
	steps []exchangeStep
}

func parseExchange(data string) (exchangeScript, error) {
	var sc exchangeScript
	for i, l := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case l == "@tls":
			sc.tls = true
		case strings.HasPrefix(l, "@set "):
			sc.set = append(sc.set, strings.TrimPrefix(l, "@set "))
		case strings.HasPrefix(l, "C: "), strings.HasPrefix(l, "S: "):
			sc.steps = append(sc.steps, exchangeStep{client: l[0] == 'C', line: l[3:], lineNo: i + 1})
		default:
			return sc, fmt.Errorf("line %d: %q is no C:, S:, @ or # line", i+1, l)
		}
	}
	return sc, nil
}

// withSettings applies "key: value" lines (dotted keys, YAML values) to a
// copy of p.
func withSettings(p *profile.Profile, set []string) (*profile.Profile, error) {
	if len(set) == 0 {
		return p, nil
	}
	data, err := yaml.Marshal(p)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		return nil, err
	}
	for _, s := range set {
		var kv map[string]any
		if err := yaml.Unmarshal([]byte(s), &kv); err != nil || len(kv) != 1 {
			return nil, fmt.Errorf("@set %q: want one key: value (%v)", s, err)
		}
		for k, v := range kv {
			m := tree
			parts := strings.Split(k, ".")
			for _, part := range parts[:len(parts)-1] {
				sub, ok := m[part].(map[string]any)
				if !ok {
					return nil, fmt.Errorf("@set %q: no key %s", s, k)
				}
				m = sub
			}
			if _, ok := m[parts[len(parts)-1]]; !ok {
				return nil, fmt.Errorf("@set %q: no key %s", s, k)
			}
			m[parts[len(parts)-1]] = v
		}
	}
	if data, err = yaml.Marshal(tree); err != nil {
		return nil, err
	}
	return profile.Parse(data)
}

var repeatToken = regexp.MustCompile(`<repeat:([^:>]*):(\d+)>`)

// expandClient writes out <repeat:X:n>.
func expandClient(line string) string {
	return repeatToken.ReplaceAllStringFunc(line, func(m string) string {
		sub := repeatToken.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		return strings.Repeat(sub[1], n)
	})
}

// serverPattern turns an expected server line into an anchored pattern:
// the text literal, <host> and <num> as what they stand for.
func serverPattern(line string) *regexp.Regexp {
	q := regexp.QuoteMeta(line)
	q = strings.ReplaceAll(q, "<host>", `[A-Za-z0-9.-]+`)
	q = strings.ReplaceAll(q, "<num>", `[0-9]+`)
	return regexp.MustCompile("^" + q + "$")
}

// TestExchangeReplay drives the server under exchange2010 through the
// exchanges of real Exchange servers in fixtures/exchange and compares
// every server line.
func TestExchangeReplay(t *testing.T) {
	files, err := fs.Glob(fixtures.FS, "exchange/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no replay files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(f, "exchange/"), ".txt"), func(t *testing.T) {
			data, err := fs.ReadFile(fixtures.FS, f)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := parseExchange(string(data))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if !strings.Contains(string(data), "# source:") {
				t.Fatalf("%s names no source", f)
			}
			p, err := withSettings(loadProfile(t, "exchange2010"), sc.set)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			replay(t, startServer(t, p), f, sc)
		})
	}
}

func replay(t *testing.T, ts *testServer, file string, sc exchangeScript) {
	var c *client
	if sc.tls {
		c = ts.dialTLS(t)
	} else {
		c = ts.dial(t)
	}
	greeting := true // the first S: line is the greeting newClient read
	for _, st := range sc.steps {
		at := fmt.Sprintf("%s:%d", file, st.lineNo)
		switch {
		case st.client:
			c.send(expandClient(st.line) + "\r\n")
		case st.line == "<close>":
			if rest := c.closed(); rest != "" {
				t.Fatalf("%s: want the close, got %q first", at, rest)
			}
		case st.line == "<body>":
			c.multi()
		default:
			got := c.greeting
			if !greeting {
				got = replayLine(t, c.r)
			}
			greeting = false
			if !serverPattern(st.line).MatchString(got) {
				t.Fatalf("%s: got %q, want %q", at, got, st.line)
			}
		}
	}
}

// replayLine reads one line and keeps a lone "+ " intact (the client's
// line helper would too; this one also reports a missing CRLF).
func replayLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	s, err := r.ReadString('\n')
	if err != nil || !strings.HasSuffix(s, "\r\n") {
		t.Fatalf("read: %q, %v", s, err)
	}
	return strings.TrimSuffix(s, "\r\n")
}
