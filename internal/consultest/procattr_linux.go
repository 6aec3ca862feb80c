package consultest

import "syscall"

// procAttr makes the agent die with the test binary, so a crashed or killed
// test run leaves no agent behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
