package runner

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a worker end when the probe that started it dies
// (killed, crashed): a worker alone would go on auditing a server whose
// run nobody will report.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
