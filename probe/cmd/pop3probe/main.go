// Command pop3probe audits a POP3 server with the conformance specs of
// suites/conformance and writes a conformance report. See `pop3probe --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pop3conformance/pop3conformance/probe/cli"
	"github.com/pop3conformance/pop3conformance/probe/runner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if len(os.Args) == 2 && os.Args[1] == runner.WorkerArg {
		// A worker of another probe run: the job comes on stdin, the
		// events go to the pipe the run passed as descriptor 3.
		err := runner.Worker(ctx, os.Stdin, os.NewFile(3, "events"))
		stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pop3probe worker: %v\n", err)
			os.Exit(cli.ExitUsage)
		}
		os.Exit(0)
	}
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	rn := &runner.Runner{Executable: exe}
	code := cli.Main(ctx, os.Args[1:], cli.Env{
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		Getenv:     os.Getenv,
		Runner:     rn.Run,
		Observer:   rn.Observe,
		Executable: exe,
	})
	stop()
	os.Exit(code)
}
