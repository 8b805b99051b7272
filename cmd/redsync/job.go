//go:build unix

package main

import (
	"errors"
	"os/exec"
	"syscall"
)

// A job is what runs for COMMAND: COMMAND itself, which leads a process
// group of its own, the other processes of that group, and the orphans
// that redsync adopted as their subreaper (on Linux; see adoptOrphans):
// processes whose parent in the job exited, including those that left the
// group (with setsid, say). The job is gone when none of them runs.
//
// A job's methods are called from one goroutine. startJob starts one more,
// which waits for COMMAND and ends when COMMAND has exited.
type job struct {
	cmd    *exec.Cmd
	pgid   int
	guard  int           // the guard's PID, which is no orphan
	exited chan struct{} // closed once COMMAND has exited and was reaped
	err    error         // cmd.Wait's result, set before exited is closed
	termed map[int]bool  // the orphans that got SIGTERM
}

// childProcess is a child process of redsync, as children reports it.
type childProcess struct {
	pid, ppid, pgid int
	zombie          bool
}

// startJob starts cmd in a process group of its own. guard is the PID of
// the guard process. The caller has called adoptOrphans.
func startJob(cmd *exec.Cmd, guard int) (*job, error) {
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	j := &job{cmd: cmd, pgid: cmd.Process.Pid, guard: guard, exited: make(chan struct{}), termed: map[int]bool{}}
	go func() {
		j.err = cmd.Wait()
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

// forward sends sig, which redsync received, to COMMAND's process group.
func (j *job) forward(sig syscall.Signal) {
	_ = syscall.Kill(-j.pgid, sig)
	// COMMAND may have left its group.
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
		signalOrphan(c, syscall.SIGKILL)
	}
}

// gone reports whether nothing of the job runs any more. Once COMMAND has
// exited and its group is empty, new orphans can only come from running
// ones; an orphan reaped in the look may have had children that were
// adopted while the look went on, so that look does not count.
func (j *job) gone() bool {
	if !j.hasExited() || !errors.Is(syscall.Kill(-j.pgid, 0), syscall.ESRCH) {
		return false
	}
	running, reaped := j.look()
	return len(running) == 0 && reaped == 0
}

// orphans reaps the orphans that exited and returns those that run.
func (j *job) orphans() []childProcess {
	running, _ := j.look()
	return running
}

// look returns the orphans that run, and reaps and counts those that
// exited.
func (j *job) look() (running []childProcess, reaped int) {
	for _, c := range children() {
		switch {
		case c.pid == j.cmd.Process.Pid || c.pid == j.guard:
			// Not orphans: their exec.Cmd reaps them.
		case c.zombie:
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(c.pid, &ws, syscall.WNOHANG, nil); pid == c.pid {
				reaped++
			}
		default:
			running = append(running, c)
		}
	}
	return running, reaped
}

// signalOrphan sends sig to orphan c and, when c leads a process group of
// its own (it left the job's group with setsid or setpgid), to that group:
// its members are c's descendants.
func signalOrphan(c childProcess, sig syscall.Signal) {
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
