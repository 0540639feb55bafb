package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pop3conformance/pop3conformance/model/profile"
)

// TLSMode is how the client reaches the server.
type TLSMode string

const (
	TLSNone     TLSMode = "none"
	TLSStartTLS TLSMode = "starttls"
	TLSImplicit TLSMode = "implicit"
)

// Permissions say which classes of specs may run against the target.
type Permissions struct {
	// Reversible lets specs mark mail deleted and undo it with RSET or a
	// close without QUIT; the undo depends on the server behaving well.
	Reversible bool `yaml:"reversible"`
	Mutating   bool `yaml:"mutating"`
	Disruptive bool `yaml:"disruptive"`
	Slow       bool `yaml:"slow"`
}

// AllowsReversible says whether DELE may be sent: mutating specs delete
// mail for good, so allowing them allows the lesser risk too.
func (p Permissions) AllowsReversible() bool { return p.Reversible || p.Mutating }

// Config says what to test. Without Host the bundled reference server is
// the target.
type Config struct {
	Host               string  `yaml:"host"`
	Port               int     `yaml:"port"`
	TLS                TLSMode `yaml:"tls"`
	InsecureSkipVerify bool    `yaml:"insecure_skip_verify"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
	// CAFile is a PEM bundle to trust in addition to the system roots.
	CAFile    string `yaml:"ca_file"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	User2     string `yaml:"user2"`
	Password2 string `yaml:"password2"`
	// Profile names the expectations: a bundled profile or a YAML path.
	Profile string `yaml:"profile"`
	// ReferenceProfile is what the bundled server does; empty means the
	// same as Profile. Set them apart to prove that specs discriminate.
	ReferenceProfile string `yaml:"reference_profile"`
	// MailboxFixture declares that User's maildrop holds exactly the
	// messages of that fixture account (e.g. "alice"), so specs that need
	// known mail can run against a remote host.
	MailboxFixture string      `yaml:"mailbox_fixture"`
	Allow          Permissions `yaml:"allow"`
	// Preflighted says the caller already checked the connection and the
	// logins (Target.Preflight), so the suite need not again.
	Preflighted bool `yaml:"-"`
	// Worker marks a process that runs some of a probe run's readonly
	// specs while other processes run others (probe/runner): it holds at
	// most one connection at a time, and a refusal that the others'
	// sessions may have caused marks the spec busy (ErrBusy) so that the
	// run gives it again to its first process, alone.
	Worker bool `yaml:"-"`
	// Facts, when set, are the facts the run's first process measured;
	// the suite takes them instead of measuring again.
	Facts *Facts `yaml:"-"`
	// Sessions is how many connections the run may hold at once (the
	// probe's --max-connections); with two or more, MeasureFacts measures
	// on two at once. 0 or 1: one at a time.
	Sessions int `yaml:"-"`
}

// Environment variable names; scripts and CI rely on them.
const (
	EnvHost               = "POP3_HOST"
	EnvPort               = "POP3_PORT"
	EnvTLS                = "POP3_TLS"
	EnvInsecureSkipVerify = "POP3_INSECURE_SKIP_VERIFY"
	EnvServerName         = "POP3_SERVER_NAME"
	EnvCAFile             = "POP3_CA_FILE"
	EnvUser               = "POP3_USER"
	EnvPassword           = "POP3_PASSWORD"
	EnvUser2              = "POP3_USER2"
	EnvPassword2          = "POP3_PASSWORD2"
	EnvProfile            = "POP3_PROFILE"
	EnvReferenceProfile   = "POP3_REFERENCE_PROFILE"
	EnvMailboxFixture     = "POP3_MAILBOX_FIXTURE"
	EnvAllow              = "POP3_ALLOW"
	EnvTargetFile         = "POP3_TARGET_FILE"
)

// DefaultProfile is used when no profile is named.
const DefaultProfile = profile.Default

// ConfigFromEnv reads the target from POP3_TARGET_FILE, then lets every
// POP3_* variable that is set override the file.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if path := getenv(EnvTargetFile); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("%s: %w", EnvTargetFile, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("%s %s: %w", EnvTargetFile, path, err)
		}
	}
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	str(EnvHost, &c.Host)
	str(EnvServerName, &c.ServerName)
	str(EnvCAFile, &c.CAFile)
	str(EnvUser, &c.User)
	str(EnvPassword, &c.Password)
	str(EnvUser2, &c.User2)
	str(EnvPassword2, &c.Password2)
	str(EnvProfile, &c.Profile)
	str(EnvReferenceProfile, &c.ReferenceProfile)
	str(EnvMailboxFixture, &c.MailboxFixture)
	if v := getenv(EnvTLS); v != "" {
		c.TLS = TLSMode(v)
	}
	if v := getenv(EnvPort); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not a port number", EnvPort, v))
		}
		c.Port = p
	}
	if v := getenv(EnvInsecureSkipVerify); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q is not true or false", EnvInsecureSkipVerify, v))
		}
		c.InsecureSkipVerify = b
	}
	if v := getenv(EnvAllow); v != "" {
		for _, a := range strings.Split(v, ",") {
			switch strings.TrimSpace(a) {
			case "reversible":
				c.Allow.Reversible = true
			case "mutating":
				c.Allow.Mutating = true
			case "disruptive":
				c.Allow.Disruptive = true
			case "slow":
				c.Allow.Slow = true
			case "":
			default:
				errs = append(errs, fmt.Errorf("%s: %q is not reversible, mutating, disruptive or slow", EnvAllow, a))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	c.setDefaults()
	return c, c.Validate()
}

func (c *Config) setDefaults() {
	if c.Profile == "" {
		c.Profile = DefaultProfile
	}
	if c.TLS == "" {
		c.TLS = TLSNone
	}
	if c.Host != "" && c.Port == 0 {
		c.Port = c.DefaultPort()
	}
}

// DefaultPort is the port of a target that names none: 110, or 995 with
// implicit TLS (RFC 1939 section 3 and MS-STANXPOP3 E0001).
func (c Config) DefaultPort() int {
	if c.TLS == TLSImplicit {
		return 995
	}
	return 110
}

// Remote reports whether the target is a host of the user's rather than
// the bundled server.
func (c Config) Remote() bool { return c.Host != "" }

// Addr is the remote host and port.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// Validate says what to set when the configuration cannot work.
func (c Config) Validate() error {
	var errs []error
	switch c.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		errs = append(errs, fmt.Errorf("%s=%q: use none, starttls or implicit", EnvTLS, c.TLS))
	}
	if c.Remote() {
		if c.Port <= 0 || c.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s=%d is not a TCP port", EnvPort, c.Port))
		}
		if c.User == "" || c.Password == "" {
			errs = append(errs, fmt.Errorf("a remote target needs %s and %s", EnvUser, EnvPassword))
		}
		if (c.User2 == "") != (c.Password2 == "") {
			errs = append(errs, fmt.Errorf("set both %s and %s, or neither", EnvUser2, EnvPassword2))
		}
		if c.ReferenceProfile != "" {
			errs = append(errs, fmt.Errorf("%s applies to the bundled server only; unset it or unset %s", EnvReferenceProfile, EnvHost))
		}
	} else if c.User != "" || c.Password != "" {
		errs = append(errs, fmt.Errorf("%s/%s are set but %s is not: set %s to test a remote host, or unset them to test the bundled server", EnvUser, EnvPassword, EnvHost, EnvHost))
	}
	return errors.Join(errs...)
}

// Redacted returns the configuration with passwords hidden, for reports.
func (c Config) Redacted() Config {
	if c.Password != "" {
		c.Password = "<redacted>"
	}
	if c.Password2 != "" {
		c.Password2 = "<redacted>"
	}
	return c
}
