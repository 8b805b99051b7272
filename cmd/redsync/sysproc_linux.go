//go:build linux

package main

import (
	"bytes"
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
// children) and stops it with the rest.
func adoptOrphans() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// children returns the child processes of redsync, read from /proc.
func children() []childProcess {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var found []childProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c, ok := readChild(pid); ok && c.ppid == self {
			found = append(found, c)
		}
	}
	return found
}

// readChild reads the state, parent and process group of process pid from
// /proc/PID/stat: "PID (COMM) STATE PPID PGRP ...", where COMM may hold
// spaces and parentheses.
func readChild(pid int) (childProcess, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return childProcess{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return childProcess{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return childProcess{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgid, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return childProcess{}, false
	}
	return childProcess{pid: pid, ppid: ppid, pgid: pgid, zombie: f[0][0] == 'Z'}, true
}
