//go:build linux

package main

import "syscall"

// childAttr puts the command in a process group of its own, and has the
// kernel kill it if redsync dies: without redsync nothing extends the
// lock, and the command must not outlive it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
