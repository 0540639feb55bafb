package harness

import (
	"strings"
	"testing"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" means no error
		check   func(t *testing.T, c Config)
	}{
		{
			name: "bundled server by default",
			env:  map[string]string{},
			check: func(t *testing.T, c Config) {
				if c.Remote() || c.Profile != DefaultProfile || c.TLS != TLSNone {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "remote implicit TLS defaults to 995",
			env:  map[string]string{EnvHost: "mail.example.org", EnvTLS: "implicit", EnvUser: "u", EnvPassword: "p"},
			check: func(t *testing.T, c Config) {
				if c.Port != 995 || c.Addr() != "mail.example.org:995" {
					t.Errorf("port %d addr %s", c.Port, c.Addr())
				}
			},
		},
		{
			name: "remote plain defaults to 110",
			env:  map[string]string{EnvHost: "127.0.0.1", EnvUser: "u", EnvPassword: "p"},
			check: func(t *testing.T, c Config) {
				if c.Port != 110 {
					t.Errorf("port %d", c.Port)
				}
			},
		},
		{
			name: "allow list",
			env:  map[string]string{EnvAllow: "mutating, slow"},
			check: func(t *testing.T, c Config) {
				if !c.Allow.Mutating || !c.Allow.Slow || c.Allow.Disruptive {
					t.Errorf("allow %+v", c.Allow)
				}
			},
		},
		{name: "unknown allow", env: map[string]string{EnvAllow: "everything"}, wantErr: "not reversible, mutating, disruptive or slow"},
		{
			name: "reversible alone",
			env:  map[string]string{EnvAllow: "reversible"},
			check: func(t *testing.T, c Config) {
				if !c.Allow.Reversible || c.Allow.Mutating || !c.Allow.AllowsReversible() {
					t.Errorf("allow %+v", c.Allow)
				}
			},
		},
		{
			name: "mutating implies reversible",
			env:  map[string]string{EnvAllow: "mutating"},
			check: func(t *testing.T, c Config) {
				if c.Allow.Reversible || !c.Allow.AllowsReversible() {
					t.Errorf("allow %+v", c.Allow)
				}
			},
		},
		{name: "bad port", env: map[string]string{EnvHost: "h", EnvPort: "pop3", EnvUser: "u", EnvPassword: "p"}, wantErr: "not a port number"},
		{name: "bad tls", env: map[string]string{EnvTLS: "ssl"}, wantErr: "use none, starttls or implicit"},
		{name: "remote without user", env: map[string]string{EnvHost: "h"}, wantErr: "needs POP3_USER and POP3_PASSWORD"},
		{name: "user without host", env: map[string]string{EnvUser: "u", EnvPassword: "p"}, wantErr: "POP3_HOST is not"},
		{name: "half a second account", env: map[string]string{EnvHost: "h", EnvUser: "u", EnvPassword: "p", EnvUser2: "v"}, wantErr: "set both POP3_USER2 and POP3_PASSWORD2"},
		{name: "reference profile with remote", env: map[string]string{EnvHost: "h", EnvUser: "u", EnvPassword: "p", EnvReferenceProfile: "rfc1939"}, wantErr: "applies to the bundled server only"},
		{name: "missing target file", env: map[string]string{EnvTargetFile: "/nonexistent/target.yaml"}, wantErr: "POP3_TARGET_FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestRedactedHidesPasswords(t *testing.T) {
	c := Config{Host: "h", User: "u", Password: "secret1", User2: "v", Password2: "secret2"}
	r := c.Redacted()
	if strings.Contains(r.Password+r.Password2, "secret") {
		t.Errorf("Redacted kept a password: %+v", r)
	}
	if c.Password != "secret1" {
		t.Error("Redacted changed its receiver")
	}
}
