//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// childAttr puts the command in a process group of its own, and has the
// kernel kill it if redsync dies: without redsync nothing extends the
// lock, and the command must not outlive it. The guard (guard.go) kills
// the rest of the group.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// selfPath is the path that starts redsync again, for the guard: it holds
// even when the file was replaced since redsync started.
func selfPath() (string, error) {
	return "/proc/self/exe", nil
}

// adoptOrphans makes redsync the subreaper of its descendants: a process
// whose parent exits becomes redsync's child instead of init's, also when
// it left the command's process group, so that redsync finds it (see
// processes) and stops it with the rest. It fails when /proc cannot be
// read, since redsync would then not see them.
func adoptOrphans() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	_, err := processes()
	return err
}

// awaitExit waits until process pid, a child of redsync, has exited, and
// leaves it unreaped: until it is reaped, its PID, which is also the ID of
// its process group, cannot go to another process.
func awaitExit(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// processes returns the processes that /proc shows. An error means that
// the list may be incomplete; a process that exits while /proc is read is
// left out.
func processes() ([]process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("reading /proc: %w", err)
	}
	var found []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProcess(pid)
		switch {
		case err == nil:
			found = append(found, p)
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ESRCH):
			// It exited since the directory was read.
		default:
			return nil, err
		}
	}
	return found, nil
}

// readProcess reads the parent and process group of process pid from
// /proc/PID/stat: "PID (COMM) STATE PPID PGRP ...", where COMM may hold
// spaces and parentheses.
func readProcess(pid int) (process, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return process{}, err
	}
	bad := fmt.Errorf("reading /proc/%d/stat: unexpected content %q", pid, b)
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return process{}, bad
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return process{}, bad
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgid, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return process{}, bad
	}
	return process{pid: pid, ppid: ppid, pgid: pgid}, nil
}
