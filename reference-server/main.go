// Command reference-server runs the bundled POP3 server that the
// conformance suite uses as its default target.
//
//	reference-server --profile exchange2010 --listen 127.0.0.1:1110 \
//	    --tls-listen 127.0.0.1:1995 [--data DIR] [--seed DIR] [--smtp-listen ADDR]
//
// Once both listeners are up it prints exactly one line,
// "listening pop3=ADDR pop3s=ADDR", on stdout ("none" for a disabled
// listener). It logs to stderr and stops cleanly on SIGINT or SIGTERM.
//
// Passwords: with --password-storage hashed (the default) account.json
// keeps a bcrypt hash, plus the NT hash when the profile offers NTLM and
// the clear password only when it offers APOP, which needs the shared
// secret itself (RFC 1939 section 7); see maildrop.Credentials.
// "clear" keeps the password only, as the suite's in-process store does.
//
//	reference-server hash-password [--cost N] [--nt] < password
//
// reads one password from stdin and prints the forms users.yaml accepts
// instead of "password:" (password_bcrypt, and nt_hash with --nt).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pop3conformance/pop3conformance/model/profile"
	"github.com/pop3conformance/pop3conformance/reference-server/embed"
	"github.com/pop3conformance/pop3conformance/reference-server/maildrop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a problem with the command line or the profile: exit 2.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, os.Stdin, stdout, stderr)
}

func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var err error
	if len(args) > 0 && args[0] == "hash-password" {
		err = hashPassword(args[1:], stdin, stdout, stderr)
	} else {
		err = serve(ctx, args, stdout, stderr)
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "reference-server: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "reference-server: %v\n", err)
		return 1
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("reference-server", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		profName  = fl.String("profile", profile.Default, "profile: "+strings.Join(profile.Bundled(), ", ")+", or a YAML file")
		listen    = fl.String("listen", "127.0.0.1:1110", "plain POP3 (and STLS) listen address; \"\" disables it")
		tlsListen = fl.String("tls-listen", "127.0.0.1:1995", "implicit-TLS POP3 listen address; \"\" disables it")
		dataDir   = fl.String("data", "", "maildrop directory (default: a temporary directory removed at exit)")
		seedDir   = fl.String("seed", "", "seed users and messages from this directory (users.yaml + .eml; default: the embedded fixtures)")
		unauth    = fl.Duration("unauth-timeout", 0, "override timers.unauthenticated")
		authT     = fl.Duration("auth-timeout", 0, "override timers.authenticated")
		maxCmd    = fl.Int("max-command-octets", 0, "override max_command_octets (40..1024)")
		certFile  = fl.String("cert", "", "TLS certificate (PEM); default: a self-signed one")
		keyFile   = fl.String("key", "", "TLS private key (PEM)")
		maxConns  = fl.Int("max-connections", 0, "maximum concurrent sessions; 0: unlimited")
		logLevel  = fl.String("log-level", "info", "debug, info, warn or error")
		site      = fl.String("site", "", "this server's site (C0010); default \"local\"")
		smtpAddr  = fl.String("smtp-listen", "", "also accept mail over SMTP on this (loopback) address; no authentication")
		lmtp      = fl.Bool("lmtp", false, "speak LMTP instead of SMTP on --smtp-listen")
		pwStore   = fl.String("password-storage", "hashed", "what account files keep of a password: hashed (bcrypt; NT hash if NTLM is offered, clear only if APOP is) or clear")
	)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fl.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fl.Arg(0))}
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	prof, err := profile.Load(*profName)
	if err == nil {
		err = prof.Complete()
	}
	if err != nil {
		return usageError{err}
	}
	prof = prof.Clone()
	if set["unauth-timeout"] {
		prof.Timers.Unauthenticated = profile.Duration(*unauth)
	}
	if set["auth-timeout"] {
		prof.Timers.Authenticated = profile.Duration(*authT)
	}
	if set["max-command-octets"] {
		prof.MaxCommandOctets = *maxCmd
	}
	if err := prof.Validate(); err != nil {
		return usageError{fmt.Errorf("profile %s after overrides: %w", prof.Name, err)}
	}
	if *maxConns < 0 {
		return usageError{errors.New("--max-connections must not be negative")}
	}
	var creds *maildrop.Credentials
	switch *pwStore {
	case "hashed":
		creds = &maildrop.Credentials{Hash: true, NTHash: slices.Contains(prof.SASL, "NTLM"), Clear: prof.APOP}
	case "clear":
	default:
		return usageError{fmt.Errorf("--password-storage %q: use hashed or clear", *pwStore)}
	}
	if (*certFile == "") != (*keyFile == "") {
		return usageError{errors.New("--cert and --key go together")}
	}
	var tlsConfig *tls.Config
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return usageError{fmt.Errorf("load certificate: %w", err)}
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if *listen == "" && *tlsListen == "" {
		return usageError{errors.New("both listeners are disabled")}
	}

	var seed fs.FS
	if *seedDir != "" {
		seed = os.DirFS(*seedDir)
	}
	in, err := embed.Start(ctx, embed.Options{
		Profile:        prof,
		Dir:            *dataDir,
		Seed:           seed,
		Plain:          *listen,
		TLS:            *tlsListen,
		TLSConfig:      tlsConfig,
		Credentials:    creds,
		MaxConnections: *maxConns,
		Site:           *site,
		Delivery:       *smtpAddr,
		LMTP:           *lmtp,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "listening pop3=%s pop3s=%s\n", orNone(in.Plain), orNone(in.TLS))
	log.Info("reference server ready", "profile", prof.Name, "data", in.Dir)

	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return in.Close(sctx)
}

func orNone(addr string) string {
	if addr == "" {
		return "none"
	}
	return addr
}

// hashPassword is the hash-password subcommand: one password from stdin
// (up to the first line end), its stored forms on stdout as users.yaml
// keys. The password is never echoed.
func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("reference-server hash-password", flag.ContinueOnError)
	fl.SetOutput(stderr)
	cost := fl.Int("cost", 0, "bcrypt cost (4..31); 0: the default")
	nt := fl.Bool("nt", false, "also print the NT hash, which AUTH NTLM needs (it is password-equivalent for NTLM)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fl.NArg() > 0 {
		return usageError{fmt.Errorf("hash-password: unexpected argument %q (the password is read from stdin)", fl.Arg(0))}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("hash-password: read stdin: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if pw == "" {
		return usageError{errors.New("hash-password: no password on stdin")}
	}
	h, err := maildrop.HashPassword(pw, *cost)
	if err != nil {
		return usageError{fmt.Errorf("hash-password: %w", err)}
	}
	fmt.Fprintf(stdout, "password_bcrypt: %q\n", h)
	if *nt {
		fmt.Fprintf(stdout, "nt_hash: %x\n", maildrop.NTHashOf(pw))
	}
	return nil
}
