// Command pop3probe audits a POP3 server with the conformance specs of
// suites/conformance and writes a conformance report. See `pop3probe --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pop3conformance/pop3conformance/probe/cli"
	"github.com/pop3conformance/pop3conformance/probe/runner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	code := cli.Main(ctx, os.Args[1:], cli.Env{
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		Getenv:     os.Getenv,
		Runner:     runner.Run,
		Observer:   runner.Observe,
		Executable: exe,
	})
	stop()
	os.Exit(code)
}
