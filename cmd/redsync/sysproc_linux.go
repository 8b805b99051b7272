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
	if err := procShowsAll(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	_, err := processes()
	return err
}

// procShowsAll returns an error when /proc may not show redsync every
// process of its PID namespace: a /proc of another namespace (a container,
// or unshare --pid without --mount-proc, where no process seems to be
// redsync's child), or one mounted with hidepid while redsync is not root
// (a setuid program of the job would be hidden). Either way redsync could
// take the job for gone while part of it runs.
func procShowsAll() error {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("reading /proc/self: %w", err)
	}
	if self != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("/proc belongs to another PID namespace (/proc/self is %s, redsync's PID is %d): mount the namespace's own /proc (for example unshare --pid --fork --mount-proc)",
			self, os.Getpid())
	}
	if os.Geteuid() == 0 {
		return nil // root sees every process whatever hidepid says
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	if opt := hidepid(info); opt != "" {
		return fmt.Errorf("/proc is mounted with hidepid=%s, which hides the processes of other users that the job may start (set-user-ID programs): run redsync as root, or mount /proc without hidepid", opt)
	}
	return nil
}

// hidepid returns the hidepid option of the proc file system mounted on
// /proc, as mountinfo lists it; "" when it hides nothing.
func hidepid(mountinfo []byte) string {
	last := "" // of the last proc mounted on /proc: the one in use
	for line := range bytes.Lines(mountinfo) {
		// "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPEROPTIONS"
		fields := bytes.Fields(line)
		sep := bytes.Index(line, []byte(" - "))
		if len(fields) < 5 || string(fields[4]) != "/proc" || sep < 0 {
			continue
		}
		tail := bytes.Fields(line[sep+3:])
		if len(tail) < 3 || string(tail[0]) != "proc" {
			continue
		}
		opt := ""
		for o := range bytes.SplitSeq(tail[2], []byte(",")) {
			if v, ok := bytes.CutPrefix(o, []byte("hidepid=")); ok {
				opt = string(v)
			}
		}
		if opt == "0" || opt == "off" {
			opt = ""
		}
		last = opt
	}
	return last
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
