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
// job after SIGKILL without seeing it go on ending: no process of it
// reaped or newly killed, its group not found empty. A process that
// survives SIGKILL that long runs as another user (SIGKILL did not reach
// it) or is stuck in the kernel. Processes that are adopted one
// generation at a time, and killed as they come, restart it each time.
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

	lost      bool      // the lock ended before the job was gone
	lossCause string    // why, once lost
	termAt    time.Time // when SIGTERM went to the job; zero before
	killedAt  time.Time // when SIGKILL first went to the job; zero before

	// patientSince is when the patience after SIGKILL started: at the
	// first SIGKILL, and again each time the job showed progress
	// (job.progress moved from seen).
	patientSince time.Time
	seen         int
}

// run runs the job to its end, and returns the exit status: COMMAND's, or
// exitLost.
func (s *supervisor) run() int {
	s.waitExit()
	s.stop()
	if s.noteLoss() {
		errorf(s.stderr, "%s before redsync saw %s end", s.lossCause, s.name)
	}
	if s.lost {
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
// the lock is lost and, after SIGKILL, the job shows no progress for
// killPatience.
func (s *supervisor) stop() {
	look := time.NewTimer(0)
	defer look.Stop()
	for {
		lostNow := s.noteLoss()
		if s.job.gone() {
			if lostNow {
				errorf(s.stderr, "%s before redsync saw %s end", s.lossCause, s.name)
			}
			return
		}
		if patience := s.outlastedPatience(); s.lost && patience {
			if err := s.job.lookErr; err != nil {
				errorf(s.stderr, "processes of %s may survive SIGKILL (another user's, or stuck in the kernel), and the processes cannot be listed (%v); giving up on them", s.name, err)
			} else {
				errorf(s.stderr, "processes of %s survive SIGKILL (another user's, or stuck in the kernel); giving up on them", s.name)
			}
			return
		}
		stopping := s.stopping()
		s.signal()
		if lostNow {
			errorf(s.stderr, "%s; stopping %s %s", s.lossCause, s.name, stopping)
		}
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
// and in between SIGTERM to the orphans newly adopted. It says what it
// does after it has done it: a write to the standard error may fail or
// be slow, and must not hold the signals up.
func (s *supervisor) signal() {
	now := time.Now()
	switch {
	case s.termAt.IsZero():
		stopping := s.stopping()
		s.termAt = now
		if now.Before(s.killAt()) {
			s.job.terminate()
		} else {
			s.kill()
		}
		if !s.lost {
			errorf(s.stderr, "%s exited; stopping the processes it left %s", s.name, stopping)
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
		s.patientSince = s.killedAt
	}
	s.job.kill()
}

// outlastedPatience reports whether the job has had SIGKILL and then
// showed no progress for killPatience.
func (s *supervisor) outlastedPatience() bool {
	if s.killedAt.IsZero() {
		return false
	}
	if s.job.progress != s.seen {
		s.seen = s.job.progress
		s.patientSince = time.Now()
	}
	return time.Since(s.patientSince) > killPatience
}

// nextLook is how long to wait before looking at the job again: until
// SIGKILL is due, at most pollInterval; but a second once the job has
// shown no progress for killPatience after SIGKILL, since what is left
// may never go.
func (s *supervisor) nextLook() time.Duration {
	if !s.patientSince.IsZero() && time.Since(s.patientSince) > killPatience {
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

// noteLoss records that the lock has ended, and reports whether it did
// just now: the caller says so once it has signalled the job.
func (s *supervisor) noteLoss() bool {
	if s.lost || !lockEnded(s.held) {
		return false
	}
	s.lost = true
	s.lossCause = plain(lossCause(s.held))
	return true
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
