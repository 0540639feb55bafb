package target

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/suites/harness"
)

const secretPW, secretPW2 = "s3cret-pw", "s3cret-pw2"

// parse reads args back as `pop3probe run` would, with env as the
// environment.
func parse(t *testing.T, args, env []string) (Target, []error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := NewFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	getenv := func(k string) string {
		for _, kv := range env {
			if name, v, ok := strings.Cut(kv, "="); ok && name == k {
				return v
			}
		}
		return ""
	}
	return f.Target(getenv)
}

// TestArgsRoundTrip: what Args writes, the flags read back as the same
// target, the passwords through the environment and never on argv.
func TestArgsRoundTrip(t *testing.T) {
	remote := Target{
		Config: harness.Config{Host: "mail.example", Port: 995, TLS: harness.TLSImplicit, InsecureSkipVerify: true,
			ServerName: "mx", CAFile: "ca.pem", User: "u", Password: secretPW, User2: "b", Password2: secretPW2,
			Profile: "rfc1939", MailboxFixture: "alice", Allow: harness.Permissions{Reversible: true, Disruptive: true, Slow: true}},
		LabelFilter: "readonly", Timeout: 3 * time.Minute, MaxConnections: 2, NoObserve: true,
	}
	bundled := Target{Config: harness.Config{TLS: harness.TLSNone, Profile: "rfc1939", ReferenceProfile: "dovecot",
		Allow: harness.Permissions{Mutating: true}}, Timeout: time.Hour, MaxConnections: 1}
	starttls := Target{Config: harness.Config{Host: "h", Port: 110, TLS: harness.TLSStartTLS, User: "u", Password: secretPW,
		Profile: profile.Default}, Timeout: time.Hour, MaxConnections: DefaultMaxConnections}
	for _, want := range []Target{remote, bundled, starttls} {
		args, env := Args(want)
		for _, a := range args {
			if strings.Contains(a, secretPW) {
				t.Fatalf("argv holds a password: %q", args)
			}
		}
		got, errs := parse(t, args, env)
		if len(errs) > 0 {
			t.Fatalf("%q: %v", args, errs)
		}
		// The child knows the passwords under the private names.
		if want.Password != "" {
			want.PasswordEnv = ChildPasswordEnv
		}
		if want.Password2 != "" {
			want.Password2Env = ChildPassword2Env
		}
		if got != want {
			t.Errorf("args %q\nread back %+v\nwant      %+v", args, got, want)
		}
	}
}

// TestArgsNamedPasswords: a password the parent only names (a targets
// file) is named to the child the same way and not read.
func TestArgsNamedPasswords(t *testing.T) {
	args, env := Args(Target{Config: harness.Config{Host: "h", User: "u", User2: "b"}, PasswordEnv: "PW", Password2File: "/run/pw2"})
	want := []string{"--host", "h", "--user", "u", "--password-env", "PW", "--user2", "b", "--password2-file", "/run/pw2"}
	if !slices.Equal(args, want) || len(env) != 0 {
		t.Errorf("args %q env %q, want %q and no env", args, env, want)
	}
}

func TestFlagsDefaults(t *testing.T) {
	got, errs := parse(t, nil, nil)
	want := Target{Config: harness.Config{TLS: harness.TLSNone, Profile: profile.Default}, Timeout: DefaultTimeout, MaxConnections: DefaultMaxConnections}
	if len(errs) > 0 || got != want {
		t.Errorf("got %+v %v, want %+v", got, errs, want)
	}
	if got, _ := parse(t, []string{"--host", "h", "--tls", "--user", "u", "--password-env", "PW"}, []string{"PW=x"}); got.Port != 995 {
		t.Errorf("--tls without --port: port %d, want 995", got.Port)
	}
}

func TestHarness(t *testing.T) {
	c := Target{Config: harness.Config{Host: "h", User: "u"}, PasswordEnv: "PW", LabelFilter: "x"}.Harness()
	if c != (harness.Config{Host: "h", Port: 110, TLS: harness.TLSNone, User: "u", Profile: profile.Default, Sessions: DefaultMaxConnections}) {
		t.Errorf("%+v", c)
	}
}

func TestCheckFileEntry(t *testing.T) {
	for _, tc := range []struct{ entry, wantErr string }{
		{"{host: h, user: u, password_env: PW, password2_file: f, profile: rfc1939}", ""},
		{"{host: h, password: x}", "line 1: field password not found: a targets file names a password with password_env or password_file"},
		{"{host: h, password2: x}", "password2_env or password2_file"},
		{"{reference_profile: rfc1939}", "bundled server only"},
		{"{allow: {slow: true}}", "--allow-* flags"},
		{"[not, a, mapping]", ""},
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tc.entry), &n); err != nil {
			t.Fatal(err)
		}
		err := CheckFileEntry(n.Content[0])
		if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err %v, want %q", tc.entry, err, tc.wantErr)
		}
	}
}

func TestReport(t *testing.T) {
	r := Target{Config: harness.Config{Host: "h", Port: 995, TLS: harness.TLSImplicit, User: "u", Password: secretPW,
		Allow: harness.Permissions{Mutating: true}}, LabelFilter: "readonly"}.Report()
	if r.Name != "h:995" || r.TLS != "implicit" || r.Reference || !slices.Equal(r.Allowed, []string{"reversible", "mutating"}) || r.LabelFilter != "readonly" {
		t.Errorf("%+v", r)
	}
	if b := (Target{}).Report(); b.Name != "bundled reference server" || !b.Reference {
		t.Errorf("%+v", b)
	}
}
