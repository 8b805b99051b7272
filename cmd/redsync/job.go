//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// A job is what runs for COMMAND: COMMAND itself, which leads a process
// group of its own, the other processes of that group, and the orphans
// that redsync adopted as their subreaper (on Linux; see adoptOrphans):
// processes whose parent in the job exited, including those that left the
// group (with setsid, say). The job is gone when none of them runs.
//
// Process IDs are reused once a process is reaped, and a process group's
// ID once the group is empty and its leader reaped. So that no signal
// meant for the job reaches another process: redsync signals an orphan
// only while it is its unreaped child; on Linux it reaps COMMAND only
// once its group looks empty (until then COMMAND's PID, the group's ID,
// stays taken); and it stops signalling the group for good once the group
// is empty after COMMAND was reaped.
//
// A job's methods are called from one goroutine. startJob starts one more,
// which waits for COMMAND and ends when COMMAND has exited.
type job struct {
	cmd    *exec.Cmd
	pgid   int
	guard  int           // the guard's PID, which is no orphan
	exited chan struct{} // closed once COMMAND has exited

	// reaped tells that COMMAND was reaped, and err is cmd.Wait's result
	// then. The goroutine of startJob may set them before it closes
	// exited; after that, only reap does.
	reaped bool
	err    error

	// groupGone tells that COMMAND's group is empty and COMMAND reaped:
	// its ID may now belong to another group. onGroupGone, when not nil,
	// is called once it is.
	groupGone   bool
	onGroupGone func()

	termed map[int]bool // the orphans that got SIGTERM
	killed map[int]bool // the orphans that got SIGKILL
	// progress counts what shows the job going: orphans reaped or newly
	// killed, the group found empty.
	progress int
	lookErr  error // why the processes could not be listed the last time; nil if they could
}

// process is a process as processes reports it.
type process struct {
	pid, ppid, pgid int
}

// startJob starts cmd in a process group of its own. guard is the PID of
// the guard process. The caller has called adoptOrphans.
func startJob(cmd *exec.Cmd, guard int) (*job, error) {
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	j := &job{
		cmd: cmd, pgid: cmd.Process.Pid, guard: guard, exited: make(chan struct{}),
		termed: map[int]bool{}, killed: map[int]bool{},
	}
	go func() {
		if awaitExit(cmd.Process.Pid) != nil {
			// It cannot be waited for without reaping it.
			j.err, j.reaped = cmd.Wait(), true
		}
		close(j.exited)
	}()
	return j, nil
}

// hasExited reports whether COMMAND has exited.
func (j *job) hasExited() bool {
	select {
	case <-j.exited:
		return true
	default:
		return false
	}
}

// commandReaped reports whether COMMAND has exited and was reaped: its
// PID may then be another process's.
func (j *job) commandReaped() bool {
	return j.hasExited() && j.reaped
}

// reap reaps COMMAND, which has exited.
func (j *job) reap() {
	if !j.reaped {
		j.err = j.cmd.Wait()
		j.reaped = true
	}
}

// forward sends sig, which redsync received, to COMMAND's process group
// while it is the job's.
func (j *job) forward(sig syscall.Signal) {
	if !j.groupGone {
		_ = syscall.Kill(-j.pgid, sig)
	}
	// COMMAND may have left its group. Once it is reaped, os.Process
	// signals nothing.
	_ = j.cmd.Process.Signal(sig)
}

// terminate sends SIGTERM to the whole job, and SIGCONT after it, so that
// a stopped process can act on it.
func (j *job) terminate() {
	j.forward(syscall.SIGTERM)
	j.forward(syscall.SIGCONT)
	j.terminateOrphans()
}

// terminateOrphans sends SIGTERM, then SIGCONT, to the orphans that have
// not had them yet: they are adopted one generation at a time, as their
// parents exit.
func (j *job) terminateOrphans() {
	for _, c := range j.orphans() {
		if !j.termed[c.pid] {
			j.termed[c.pid] = true
			signalOrphan(c, syscall.SIGTERM)
			signalOrphan(c, syscall.SIGCONT)
		}
	}
}

// kill sends SIGKILL to the whole job.
func (j *job) kill() {
	j.forward(syscall.SIGKILL)
	for _, c := range j.orphans() {
		if !j.killed[c.pid] {
			j.killed[c.pid] = true
			j.progress++
		}
		signalOrphan(c, syscall.SIGKILL)
	}
}

// gone reports whether nothing of the job runs any more: COMMAND has
// exited, its group is empty, and a look finds no child of redsync but
// the guard. A failure to list the processes counts as "not gone".
//
// Why such a look shows the job gone: once COMMAND is reaped, every
// process of the job descends from redsync (orphans come to redsync, the
// subreaper) through a child of redsync, which stays listed in /proc with
// redsync as its parent until redsync reaps it. So a child of redsync
// that is unreaped when the look starts is found, and counts as running
// or reaped; when none is found, no process of the job ran when the look
// started, and none can start since.
func (j *job) gone() bool {
	if !j.hasExited() || !j.groupEmpty() {
		return false
	}
	running, reaped, err := j.look()
	return err == nil && len(running) == 0 && reaped == 0
}

// groupEmpty reports whether COMMAND has exited and its process group is
// empty. On Linux, COMMAND stays unreaped until no other process is seen
// in the group, and the group is empty only when, once COMMAND is reaped,
// the kernel finds no member either.
func (j *job) groupEmpty() bool {
	switch {
	case j.groupGone:
		return true
	case !j.hasExited():
		return false
	}
	if !j.reaped {
		procs, err := j.processes()
		if err != nil {
			return false
		}
		for _, p := range procs {
			if p.pgid == j.pgid && p.pid != j.pgid {
				return false
			}
		}
		j.reap()
	}
	if !errors.Is(syscall.Kill(-j.pgid, 0), syscall.ESRCH) {
		return false
	}
	j.groupGone = true
	j.progress++
	if j.onGroupGone != nil {
		j.onGroupGone()
	}
	return true
}

// orphans reaps the orphans that exited and returns those that run; none
// when the processes cannot be listed.
func (j *job) orphans() []process {
	running, _, _ := j.look()
	return running
}

// look returns the orphans that run, and reaps and counts those that
// exited.
//
// An orphan has exited when wait4 reaps it, and runs until then, whatever
// /proc says of its state: /proc/PID/stat shows the process's first
// thread, a zombie once that thread has exited, while the other threads
// may run on, or still be ending with children that become redsync's only
// once the last thread is gone.
func (j *job) look() (running []process, reaped int, err error) {
	procs, err := j.processes()
	if err != nil {
		return nil, 0, err
	}
	self := os.Getpid()
	for _, c := range procs {
		switch {
		case c.ppid != self:
		case c.pid == j.guard:
			// Not an orphan: its exec.Cmd reaps it.
		case c.pid == j.cmd.Process.Pid && !j.commandReaped():
			// COMMAND, which reap reaps. Once it was reaped, a process
			// with its PID is another one.
		default:
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(c.pid, &ws, syscall.WNOHANG, nil); pid != c.pid {
				running = append(running, c)
				continue
			}
			reaped++
			j.progress++
			// The PID is free for another process.
			delete(j.termed, c.pid)
			delete(j.killed, c.pid)
		}
	}
	return running, reaped, nil
}

// processes lists the processes, and records whether that failed.
func (j *job) processes() ([]process, error) {
	procs, err := processes()
	j.lookErr = err
	return procs, err
}

// signalOrphan sends sig to orphan c and, when c leads a process group of
// its own (it left the job's group with setsid or setpgid), to that group:
// its members are c's descendants. c is an unreaped child of redsync, so
// its PID and its group's ID are still its own.
func signalOrphan(c process, sig syscall.Signal) {
	if c.pgid == c.pid {
		_ = syscall.Kill(-c.pid, sig)
	}
	_ = syscall.Kill(c.pid, sig)
}

// reapOrphans reaps the orphans that exited, so that no zombie stays while
// COMMAND runs.
func (j *job) reapOrphans() {
	_ = j.orphans()
}
