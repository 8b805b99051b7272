//go:build unix

package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

// The tests of this file check that no process of COMMAND's runs without
// the lock: the processes it leaves behind are stopped before the lock is
// released, they die with redsync, and the grace never outlasts the
// validity.

// killOnCleanup kills, when the test ends, the process whose PID is in
// pidfile, so that a failing test leaves nothing running.
func killOnCleanup(t *testing.T, pidfile string) {
	t.Cleanup(func() {
		if pid, err := strconv.Atoi(readString(pidfile)); err == nil && alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// waitKeyGone waits up to limit for key to be gone from every server.
func waitKeyGone(t *testing.T, servers []*redistest.Server, key string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for i := 0; i < len(servers); {
		if servers[i].MustDo(t, "EXISTS", key).Int == 0 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d still holds %q %v later", i, key, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLeftover runs a COMMAND that starts a background process in mode
// (see the child modes fork and background) and exits 0 at once, and,
// while it holds the lock, the next holder of the lock, which records
// whether the background process is still alive when it gets the lock.
// wantLog is what the background process must have recorded.
func checkLeftover(t *testing.T, mode, wantLog string) {
	t.Helper()
	_, addrs := cluster(t, 3)
	dir := t.TempDir()
	pidfile, out := filepath.Join(dir, "pid"), filepath.Join(dir, "alive")
	killOnCleanup(t, pidfile)
	first := start(t, addrs, nil, append([]string{"exec", "--ttl", "4s", "--grace", "1s", "leftover"}, childArgs("fork", pidfile, mode)...)...)
	waitFile(t, pidfile, 20*time.Second, nil)
	next := start(t, addrs, nil, append([]string{"exec", "--wait", "60s", "leftover"}, childArgs("alive", pidfile, out)...)...)

	if code := first.wait(t); code != 0 {
		t.Errorf("exit status = %d, want COMMAND's 0; stderr:\n%s", code, first.stderr.String())
	}
	if stderr := first.stderr.String(); !strings.Contains(stderr, "stopping the processes it left") {
		t.Errorf("stderr = %q, want it to say that redsync stops the processes COMMAND left", stderr)
	}
	if code := next.wait(t); code != 0 {
		t.Fatalf("next holder: exit status = %d, want 0; stderr:\n%s", code, next.stderr.String())
	}
	if got := readString(out); got != "false" {
		t.Errorf("the process that COMMAND left was alive (%q) when the next holder got the lock, want it gone", got)
	}
	if got := readString(pidfile + ".log"); got != wantLog {
		t.Errorf("the process that COMMAND left recorded %q, want %q", got, wantLog)
	}
}

func TestExecStopsLeftoverProcesses(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		wantLog string
	}{
		{"it stops on SIGTERM", "term", "terminated\n"},
		{"it ignores SIGTERM and is killed", "ignore", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLeftover(t, tt.mode, tt.wantLog) })
	}
}

func TestExecKilledGroupDies(t *testing.T) {
	servers, addrs := cluster(t, 3)
	pidfile := filepath.Join(t.TempDir(), "pid")
	killOnCleanup(t, pidfile)
	const ttl = 30 * time.Second
	r := start(t, addrs, nil, append([]string{"exec", "--ttl", ttl.String(), "orphaned"}, childArgs("fork", pidfile, "term", "stay")...)...)
	pid, _ := strconv.Atoi(waitFile(t, pidfile, 20*time.Second, r))
	r.cmd.Process.Signal(syscall.SIGKILL)
	if code := r.wait(t); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("killed redsync exit status = %d, want %d", code, 128+int(syscall.SIGKILL))
	}
	// The key was last extended at most ttl/3 before the kill, so it stays
	// at least 2/3 of the ttl: the process must be gone before.
	waitGone(t, pid, ttl/2)
	for i, s := range servers {
		if s.MustDo(t, "EXISTS", "orphaned").Int == 0 {
			t.Errorf("node %d: the lock key expired before COMMAND's background process was gone", i)
		}
	}
}

func TestExecKillsByValidityEnd(t *testing.T) {
	servers, addrs := cluster(t, 3)
	file := filepath.Join(t.TempDir(), "ignore")
	const ttl, grace = 6 * time.Second, 5 * time.Second
	r := start(t, addrs, nil, append([]string{"exec", "--ttl", ttl.String(), "--grace", grace.String(), "bounded"}, childArgs("ignore", file)...)...)
	pid, _ := strconv.Atoi(waitFile(t, file+".ready", 20*time.Second, r))
	// Stopped, redsync extends nothing: the validity ends, and COMMAND
	// (which ignores SIGTERM) must get SIGKILL at once, not after the grace.
	r.cmd.Process.Signal(syscall.SIGSTOP)
	waitKeyGone(t, servers, "bounded", ttl+20*time.Second)
	resumed := time.Now()
	r.cmd.Process.Signal(syscall.SIGCONT)
	if code := r.wait(t); code != exitLost {
		t.Errorf("exit status = %d, want %d; stderr:\n%s", code, exitLost, r.stderr.String())
	}
	if took := time.Since(resumed); took >= grace/2 {
		t.Errorf("redsync exited %v after it was continued past the validity, want well within the grace %v: SIGKILL must not wait beyond the validity", took, grace)
	}
	if alive(pid) {
		t.Errorf("COMMAND (pid %d) still runs after redsync exited", pid)
	}
}

// TestExecGraceAfterExit checks that the grace after COMMAND exited is
// counted too: a process left behind that ignores SIGTERM gets SIGKILL
// after the grace, while the lock is held.
func TestExecGraceAfterExit(t *testing.T) {
	servers, addrs := cluster(t, 3)
	pidfile := filepath.Join(t.TempDir(), "pid")
	killOnCleanup(t, pidfile)
	const grace = 2 * time.Second
	r := start(t, addrs, nil, append([]string{"exec", "--ttl", "3s", "--grace", grace.String(), "after-exit"}, childArgs("fork", pidfile, "ignore")...)...)
	pid, _ := strconv.Atoi(waitFile(t, pidfile, 20*time.Second, r))
	deadline := time.Now().Add(grace + 20*time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("COMMAND's background process still runs %v after COMMAND exited, with a grace of %v", grace+20*time.Second, grace)
		}
		for i, s := range servers {
			if s.MustDo(t, "EXISTS", "after-exit").Int == 0 && alive(pid) {
				t.Fatalf("node %d: the lock was released while COMMAND's background process ran", i)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := r.wait(t); code != 0 {
		t.Errorf("exit status = %d, want COMMAND's 0; stderr:\n%s", code, r.stderr.String())
	}
}
