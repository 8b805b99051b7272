//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// pollInterval is how often redsync looks whether the job is gone while it
// stops it.
const pollInterval = 20 * time.Millisecond

// killPatience is how long, once the lock is lost, redsync waits for the
// job after SIGKILL: a process that survives it longer runs as another
// user (SIGKILL did not reach it) or is stuck in the kernel.
const killPatience = time.Second

// A supervisor runs a job while the lock is held. It passes signals on,
// and when COMMAND exits or the lock ends, it stops whatever of the job
// still runs: SIGTERM, then SIGKILL after the grace, and at the latest
// margin before the lock's validity ends. The lock is lost for the job
// when it ended before the job was gone, even if redsync (stopped, say)
// saw COMMAND's exit only after. The methods run on one goroutine.
type supervisor struct {
	job    *job
	held   context.Context // the lock's (redsync.Mutex.Context)
	grace  time.Duration
	margin time.Duration
	name   string // COMMAND's, for messages
	stderr io.Writer

	sigs <-chan os.Signal // signals to pass on
	ctl  <-chan os.Signal // SIGTSTP, SIGCONT
	chld <-chan os.Signal // SIGCHLD: an orphan may have exited

	lost     bool      // the lock ended before the job was gone
	termAt   time.Time // when SIGTERM went to the job; zero before
	killedAt time.Time // when SIGKILL first went to the job; zero before
}

// run runs the job to its end, and returns the exit status: COMMAND's, or
// exitLost.
func (s *supervisor) run() int {
	s.waitExit()
	s.stop()
	if s.noteLoss(); s.lost {
		return exitLost
	}
	return exitStatus(s.job.cmd, s.job.err)
}

// waitExit waits until COMMAND exits or the lock ends.
func (s *supervisor) waitExit() {
	heldDone := s.held.Done()
	for !lockEnded(s.held) {
		select {
		case <-s.job.exited:
			return
		case sig := <-s.sigs:
			s.job.forward(sig.(syscall.Signal))
		case sig := <-s.ctl:
			s.jobControl(sig.(syscall.Signal))
		case <-s.chld:
			s.job.reapOrphans()
		case <-heldDone:
			heldDone = nil
		}
	}
}

// stop stops what runs of the job, and returns once it is gone, or when
// the lock is lost and the job outlives SIGKILL by killPatience.
func (s *supervisor) stop() {
	look := time.NewTimer(0)
	defer look.Stop()
	for {
		s.noteLoss()
		if s.job.gone() {
			return
		}
		if s.lost && !s.killedAt.IsZero() && time.Since(s.killedAt) > killPatience {
			errorf(s.stderr, "processes of %s survive SIGKILL (another user's, or stuck in the kernel); giving up on them", s.name)
			return
		}
		s.signal()
		look.Reset(s.nextLook())
		select {
		case <-look.C:
		case sig := <-s.sigs:
			s.job.forward(sig.(syscall.Signal))
		case sig := <-s.ctl:
			s.jobControl(sig.(syscall.Signal))
		case <-s.chld:
		}
	}
}

// signal sends the job SIGTERM the first time, SIGKILL once it is time,
// and in between SIGTERM to the orphans newly adopted.
func (s *supervisor) signal() {
	now := time.Now()
	switch {
	case s.termAt.IsZero():
		if !s.lost {
			errorf(s.stderr, "%s exited; stopping the processes it left %s", s.name, s.stopping())
		}
		s.termAt = now
		if now.Before(s.killAt()) {
			s.job.terminate()
		} else {
			s.kill()
		}
	case !now.Before(s.killAt()):
		s.kill()
	default:
		s.job.terminateOrphans()
	}
}

// kill sends SIGKILL to the job, again each time it is called: orphans
// are adopted as their parents die.
func (s *supervisor) kill() {
	if s.killedAt.IsZero() {
		s.killedAt = time.Now()
	}
	s.job.kill()
}

// nextLook is how long to wait before looking at the job again: until
// SIGKILL is due, at most pollInterval; but a second once the job has
// outlived SIGKILL by killPatience, since what is left may never go.
func (s *supervisor) nextLook() time.Duration {
	if !s.killedAt.IsZero() && time.Since(s.killedAt) > killPatience {
		return time.Second
	}
	return min(pollInterval, max(0, time.Until(s.killAt())))
}

// killAt is when the job gets SIGKILL: the grace after SIGTERM, and at the
// latest margin before the validity ends.
func (s *supervisor) killAt() time.Time {
	termAt := s.termAt
	if termAt.IsZero() {
		termAt = time.Now()
	}
	by := time.Now()
	if end, ok := s.held.Deadline(); ok {
		by = end.Add(-s.margin)
	}
	if after := termAt.Add(s.grace); after.Before(by) {
		return after
	}
	return by
}

// stopping tells what signal comes, and when, for messages.
func (s *supervisor) stopping() string {
	left := time.Until(s.killAt()).Round(time.Millisecond)
	switch {
	case left <= 0:
		return "(SIGKILL)"
	case s.termAt.IsZero():
		return fmt.Sprintf("(SIGTERM, SIGKILL in %v)", left)
	}
	return fmt.Sprintf("(SIGKILL in %v)", left)
}

// noteLoss records that the lock has ended, and says so, once.
func (s *supervisor) noteLoss() {
	if s.lost || !lockEnded(s.held) {
		return
	}
	s.lost = true
	cause := plain(lossCause(s.held))
	if s.job.gone() {
		errorf(s.stderr, "%s before redsync saw %s end", cause, s.name)
		return
	}
	errorf(s.stderr, "%s; stopping %s %s", cause, s.name, s.stopping())
}

// jobControl passes SIGTSTP or SIGCONT on to the job, but SIGCONT only
// while the lock lasts. After SIGTSTP redsync stops itself as the job
// does, with SIGSTOP: once caught, SIGTSTP no longer stops a Go program.
func (s *supervisor) jobControl(sig syscall.Signal) {
	if sig == syscall.SIGCONT && lockEnded(s.held) {
		return
	}
	s.job.forward(sig)
	if sig == syscall.SIGTSTP {
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}

// lockEnded reports whether the lock has ended: its context has, or its
// validity is over by the clock, which a redsync that was stopped sees
// before the context's timer has run.
func lockEnded(held context.Context) bool {
	if held.Err() != nil {
		return true
	}
	end, ok := held.Deadline()
	return ok && !time.Now().Before(end)
}

// lossCause is why the lock ended.
func lossCause(held context.Context) error {
	if cause := context.Cause(held); cause != nil {
		return cause
	}
	return errors.New("lock lost: the validity ran out")
}
