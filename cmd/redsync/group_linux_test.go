//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitState waits up to limit for process pid to be in a state for which
// want (given the state letter of /proc) is true.
func waitState(t *testing.T, pid int, what string, want func(state byte) bool, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !want(procState(pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d not %s %v later (state %q)", pid, what, limit, procState(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stopped(state byte) bool { return state == 'T' }

func running(state byte) bool { return state == 'R' || state == 'S' }

func TestExecStopsEscapedProcesses(t *testing.T) {
	// A process in a session of its own is out of COMMAND's process group;
	// redsync, their subreaper, finds it once COMMAND has exited.
	checkLeftover(t, "setsid", "terminated\n")
}

func TestExecJobControl(t *testing.T) {
	_, addrs := cluster(t, 3)
	file := filepath.Join(t.TempDir(), "await")
	// In a process group of its own, redsync can be stopped by SIGTSTP as a
	// job of an interactive shell is.
	r := startWith(t, &syscall.SysProcAttr{Setpgid: true}, addrs, nil,
		append([]string{"exec", "--ttl", "30s", "jobctl"}, childArgs("await", file)...)...)
	pid, _ := strconv.Atoi(waitFile(t, file+".ready", 20*time.Second, r))

	r.cmd.Process.Signal(syscall.SIGTSTP)
	waitState(t, pid, "stopped by SIGTSTP", stopped, 20*time.Second)
	waitState(t, r.cmd.Process.Pid, "stopped by SIGTSTP", stopped, 20*time.Second)
	r.cmd.Process.Signal(syscall.SIGCONT)
	waitState(t, pid, "continued by SIGCONT", running, 20*time.Second)

	writeAtomic(file+".go", "")
	if code := r.wait(t); code != 0 {
		t.Errorf("exit status after a pause well within the ttl = %d, want COMMAND's 0; stderr:\n%s", code, r.stderr.String())
	}
	if got := readString(file); got != "end\n" {
		t.Errorf("COMMAND recorded %q, want %q", got, "end\n")
	}
}

func TestExecStoppedPastValidity(t *testing.T) {
	// Which of COMMAND's exit and the lock's end a continued redsync sees
	// first is up to the scheduler: several rounds let both orders happen.
	for round := range 4 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			t.Parallel()
			checkStoppedPastValidity(t)
		})
	}
}

// checkStoppedPastValidity stops redsync with SIGSTOP, lets the lock
// expire and COMMAND end, and continues redsync.
func checkStoppedPastValidity(t *testing.T) {
	servers, addrs := cluster(t, 3)
	file := filepath.Join(t.TempDir(), "await")
	r := start(t, addrs, nil, append([]string{"exec", "--ttl", "2s", "--grace", "1s", "stopped"}, childArgs("await", file)...)...)
	pid, _ := strconv.Atoi(waitFile(t, file+".ready", 20*time.Second, r))

	// SIGSTOP cannot be caught: COMMAND runs on, and ends after the lock
	// expired, while redsync cannot tell.
	r.cmd.Process.Signal(syscall.SIGSTOP)
	waitKeyGone(t, servers, "stopped", 30*time.Second)
	writeAtomic(file+".go", "")
	waitGone(t, pid, 20*time.Second)
	r.cmd.Process.Signal(syscall.SIGCONT)
	if code := r.wait(t); code != exitLost {
		t.Errorf("exit status when COMMAND ended after the lock = %d, want %d; stderr:\n%s", code, exitLost, r.stderr.String())
	}
	if stderr := r.stderr.String(); !strings.HasPrefix(stderr, "redsync: lock lost") {
		t.Errorf("stderr = %q, want it to start with \"redsync: lock lost\"", stderr)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("COMMAND did not end: %v", err)
	}
}

func TestExecLockLostStopsEscapedProcesses(t *testing.T) {
	servers, addrs := cluster(t, 3)
	pidfile := filepath.Join(t.TempDir(), "pid")
	killOnCleanup(t, pidfile)
	r := start(t, addrs, nil, append([]string{"exec", "--ttl", "6s", "--grace", "3s", "lost-escaped"}, childArgs("fork", pidfile, "setsid", "stay")...)...)
	pid, _ := strconv.Atoi(waitFile(t, pidfile, 20*time.Second, r))
	for _, s := range servers[:2] {
		s.MustDo(t, "DEL", "lost-escaped")
	}
	if code := r.wait(t); code != exitLost {
		t.Fatalf("exit status after the lock was deleted on 2 of 3 nodes = %d, want %d; stderr:\n%s", code, exitLost, r.stderr.String())
	}
	if alive(pid) {
		t.Errorf("the process that COMMAND started in a session of its own runs after redsync exited")
	}
	if got := readString(pidfile + ".log"); got != "terminated\n" {
		t.Errorf("the process that COMMAND started in a session of its own recorded %q, want %q", got, "terminated\n")
	}
}
