package target

import (
	"strconv"

	"github.com/pop3conformance/pop3conformance/suites/harness"
)

// The environment variables that carry passwords the parent holds to a
// child probe. A command line is readable by every user of the machine
// (ps, /proc/PID/cmdline), a process environment only by its owner;
// private names keep the child independent of how the parent got the
// passwords (a variable, a file).
const (
	ChildPasswordEnv  = "POP3PROBE_CHILD_PASSWORD"
	ChildPassword2Env = "POP3PROBE_CHILD_PASSWORD2"
)

// Args writes t back as the target flags of a child probe, and env is
// what the child's environment needs besides the parent's. A password
// the parent holds travels in env under a private name; one it only
// names (a targets file's password_env or password_file) is named to the
// child the same way. No password is ever in args.
func Args(t Target) (args, env []string) {
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	on := func(flag string, b bool) {
		if b {
			args = append(args, flag)
		}
	}
	add("--host", t.Host)
	if t.Port != 0 {
		add("--port", strconv.Itoa(t.Port))
	}
	add("--reference-profile", t.ReferenceProfile)
	on("--tls", t.TLS == harness.TLSImplicit)
	on("--starttls", t.TLS == harness.TLSStartTLS)
	on("--insecure-skip-verify", t.InsecureSkipVerify)
	add("--server-name", t.ServerName)
	add("--ca-file", t.CAFile)
	password := func(flag, held, private, named, file string) {
		switch {
		case held != "":
			args = append(args, flag+"-env", private)
			env = append(env, private+"="+held)
		case named != "":
			args = append(args, flag+"-env", named)
		case file != "":
			args = append(args, flag+"-file", file)
		}
	}
	add("--user", t.User)
	password("--password", t.Password, ChildPasswordEnv, t.PasswordEnv, t.PasswordFile)
	add("--user2", t.User2)
	password("--password2", t.Password2, ChildPassword2Env, t.Password2Env, t.Password2File)
	add("--mailbox-fixture", t.MailboxFixture)
	add("--profile", t.Profile)
	on("--allow-reversible", t.Allow.Reversible)
	on("--allow-mutating", t.Allow.Mutating)
	on("--allow-disruptive", t.Allow.Disruptive)
	on("--slow", t.Allow.Slow)
	add("--label-filter", t.LabelFilter)
	if t.Timeout > 0 {
		add("--timeout", t.Timeout.String())
	}
	on("--no-observe", t.NoObserve)
	if t.MaxConnections > 0 {
		add("--max-connections", strconv.Itoa(t.MaxConnections))
	}
	return args, env
}
