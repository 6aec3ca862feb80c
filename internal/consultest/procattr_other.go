//go:build !linux

package consultest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
