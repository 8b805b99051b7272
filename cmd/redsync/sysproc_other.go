//go:build unix && !linux

package main

import (
	"errors"
	"os"
	"syscall"
)

// childAttr puts the command in a process group of its own.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// selfPath is the path that starts redsync again, for the guard.
func selfPath() (string, error) {
	return os.Executable()
}

// adoptOrphans does nothing: there is no subreaper here, and orphans of
// the command go to init.
func adoptOrphans() error {
	return nil
}

// awaitExit cannot wait without reaping here: the caller reaps COMMAND at
// once.
func awaitExit(int) error {
	return errors.ErrUnsupported
}

// processes returns no process: redsync adopts none, and COMMAND is
// reaped as soon as it exits.
func processes() ([]process, error) {
	return nil, nil
}
