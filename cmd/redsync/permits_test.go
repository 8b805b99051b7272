//go:build unix

package main

// Tests of exec --permits: the job holds one permit of a semaphore.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The child modes of these tests: this test binary run with a first
// argument "permits:MODE". They are dispatched before TestMain.
func init() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "permits:") {
		os.Exit(permitsChild(strings.TrimPrefix(os.Args[1], "permits:"), os.Args[2:]))
	}
}

// permitsChild runs one child mode:
//
//	job DIR N SLEEP  claim DIR/permit-$REDSYNC_PERMIT (O_EXCL: no other job
//	                 that runs has the same permit), count the claims in
//	                 DIR (more than N: write DIR/over-PID), append "start
//	                 PID NANOS" to DIR/intervals, sleep, append "end PID
//	                 NANOS", drop the claim; on a clash write DIR/clash-PID
//	                 and exit 1. The lock's variables are appended to
//	                 DIR/env as "PID NAME PERMIT VALUE".
func permitsChild(mode string, args []string) int {
	if mode != "job" {
		fmt.Fprintf(os.Stderr, "permits child: unknown mode %q\n", mode)
		return 2
	}
	dir := args[0]
	n, _ := strconv.Atoi(args[1])
	d, _ := time.ParseDuration(args[2])
	pid := strconv.Itoa(os.Getpid())
	permit := os.Getenv(envPermit)
	appendLine(filepath.Join(dir, "env"), strings.Join([]string{pid, os.Getenv(envName), permit, os.Getenv(envValue)}, " "))
	claim := filepath.Join(dir, "permit-"+permit)
	f, err := os.OpenFile(claim, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		writeAtomic(filepath.Join(dir, "clash-"+pid), err.Error())
		return 1
	}
	f.Close()
	if claims, _ := filepath.Glob(filepath.Join(dir, "permit-*")); len(claims) > n {
		writeAtomic(filepath.Join(dir, "over-"+pid), strings.Join(claims, " "))
	}
	intervals := filepath.Join(dir, "intervals")
	appendLine(intervals, fmt.Sprintf("start %d %d", os.Getpid(), time.Now().UnixNano()))
	time.Sleep(d)
	appendLine(intervals, fmt.Sprintf("end %d %d", os.Getpid(), time.Now().UnixNano()))
	os.Remove(claim)
	return 0
}

// mostAtOnce returns the most intervals that overlap at one instant.
func mostAtOnce(ivs []interval) int {
	type event struct {
		at    int64
		delta int
	}
	var events []event
	for _, iv := range ivs {
		events = append(events, event{iv.start, 1}, event{iv.end, -1})
	}
	// At one instant, an end comes before a start.
	slices.SortFunc(events, func(a, b event) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.delta - b.delta
	})
	most, now := 0, 0
	for _, e := range events {
		now += e.delta
		most = max(most, now)
	}
	return most
}

func TestExecPermits(t *testing.T) {
	servers, addrs := cluster(t, 3)
	dir := t.TempDir()
	const permits, jobs = 2, 3
	runs := make([]*proc, jobs)
	for i := range runs {
		args := []string{"exec", "--permits", strconv.Itoa(permits), "--wait", "60s", "--ttl", "2s", "jobs"}
		runs[i] = start(t, addrs, []string{envPermit + "=7"}, append(args, childArgs("permits:job", dir, strconv.Itoa(permits), "300ms")...)...)
	}
	for i, r := range runs {
		if code := r.wait(t); code != 0 {
			t.Errorf("redsync #%d exit status = %d, want 0; stderr:\n%s", i, code, r.stderr.String())
		}
	}
	for _, bad := range []string{"clash-*", "over-*"} {
		if found, _ := filepath.Glob(filepath.Join(dir, bad)); len(found) > 0 {
			t.Errorf("the jobs found more than %d of them, or two with one permit, running at once: %s: %s", permits, found, readString(found[0]))
		}
	}
	ivs := readIntervals(t, filepath.Join(dir, "intervals"))
	if len(ivs) != jobs {
		t.Fatalf("%d jobs ran, want %d", len(ivs), jobs)
	}
	if most := mostAtOnce(ivs); most > permits {
		t.Errorf("%d jobs ran at once, want at most %d", most, permits)
	}

	var values []string
	for line := range strings.Lines(readString(filepath.Join(dir, "env"))) {
		f := strings.Fields(line)
		if len(f) != 4 || f[1] != "jobs" || (f[2] != "0" && f[2] != "1") || f[3] == "" || slices.Contains(values, f[3]) {
			t.Errorf("a job got %q (PID, %s, %s, %s), want NAME \"jobs\", permit 0 or 1 and a fresh value", line, envName, envPermit, envValue)
		}
		if len(f) == 4 {
			values = append(values, f[3])
		}
	}
	for i, s := range servers {
		if n, err := s.DBSize(); n != 0 || err != nil {
			t.Errorf("node %d: DBSIZE after the jobs = %d, %v; want 0", i, n, err)
		}
	}
}

func TestExecPermitsExitStatus(t *testing.T) {
	servers, addrs := cluster(t, 3)
	for _, s := range servers {
		for i := range 2 {
			s.MustDo(t, "SET", "full:permit:"+strconv.Itoa(i), "someone else", "PX", "600000")
		}
	}
	closed := "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"
	tests := []struct {
		name       string
		addrs      string
		args       []string
		want       int
		wantStderr string // a prefix; "" for an empty stderr
	}{
		{"the command's status", addrs, append([]string{"exec", "--permits", "2", "a"}, childArgs("exit", "3")...), 3, ""},
		{"all held", addrs, append([]string{"exec", "--permits", "2", "full"}, childArgs("exit", "0")...), exitNotObtained, `redsync: all 2 permits of semaphore "full" are held elsewhere; not obtained at once`},
		{"all held, quiet", addrs, append([]string{"exec", "--quiet", "--permits", "2", "full"}, childArgs("exit", "0")...), exitNotObtained, ""},
		{"all held after --wait", addrs, append([]string{"exec", "--permits", "2", "--wait", "300ms", "full"}, childArgs("exit", "0")...), exitNotObtained, `redsync: all 2 permits of semaphore "full" are held elsewhere; not obtained within 300ms`},
		// A host that gives more permits uses the further slots too.
		{"more permits", addrs, append([]string{"exec", "--permits", "3", "full"}, childArgs("exit", "0")...), 0, ""},
		{"nodes unreachable", closed, append([]string{"exec", "--permits", "2", "a"}, childArgs("exit", "0")...), exitUnavailable, `redsync: a permit of semaphore "a" not obtained: 3 of 3 nodes failed`},
		{"no permits", addrs, []string{"exec", "--permits", "0", "a", "--", "true"}, exitUsage, "redsync: exec: --permits is 0; it must be at least 1"},
		{"negative permits", addrs, []string{"exec", "--permits", "-1", "a", "--", "true"}, exitUsage, "redsync: exec: --permits is -1; it must be at least 1"},
		{"permits not a number", addrs, []string{"exec", "--permits", "two", "a", "--", "true"}, exitUsage, `redsync: invalid value "two" for flag -permits`},
		{"permits with fencing", addrs, []string{"exec", "--permits", "2", "--fencing", "a", "--", "true"}, exitUsage, "redsync: exec: --fencing cannot be combined with --permits"},
		{"ttl too short", addrs, []string{"exec", "--permits", "2", "--ttl", "2ms", "a", "--", "true"}, exitUsage, "redsync: exec: invalid configuration:"},
		{"status takes no permits", addrs, []string{"status", "--permits", "2", "a"}, exitUsage, "redsync: flag provided but not defined: -permits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runToEnd(t, tt.addrs, tt.args...)
			if code != tt.want {
				t.Errorf("exit status = %d, want %d; stderr:\n%s", code, tt.want, stderr)
			}
			if tt.wantStderr == "" && stderr != "" || !strings.HasPrefix(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to start with %q", stderr, tt.wantStderr)
			}
		})
	}
	for i, s := range servers {
		for j := range 2 {
			if v := s.MustDo(t, "GET", "full:permit:"+strconv.Itoa(j)).Str; v != "someone else" {
				t.Errorf("node %d: the other owner's permit %d = %q after the failed tries, want it untouched", i, j, v)
			}
		}
		if n := s.MustDo(t, "EXISTS", "full:permit:2", "a:permit:0", "a:permit:1").Int; n != 0 {
			t.Errorf("node %d: %d permits left behind, want none", i, n)
		}
	}
}

func TestExecPermitLost(t *testing.T) {
	servers, addrs := cluster(t, 3)
	file := filepath.Join(t.TempDir(), "signals")
	const ttl = 3 * time.Second
	r := start(t, addrs, nil, append([]string{"exec", "--permits", "1", "--wait", "20s", "--ttl", ttl.String(), "--grace", "1s", "lost"}, childArgs("signals", file)...)...)
	pid, _ := strconv.Atoi(waitFile(t, file+".ready", 20*time.Second, r))
	for _, s := range servers[:2] {
		s.MustDo(t, "DEL", "lost:permit:0")
	}
	if code := r.wait(t); code != exitLost {
		t.Fatalf("exit status after the permit was deleted on 2 of 3 nodes = %d, want %d; stderr:\n%s", code, exitLost, r.stderr.String())
	}
	waitGone(t, pid, 5*time.Second)
	if got := readString(file); got != syscall.SIGTERM.String()+"\n" {
		t.Errorf("the command recorded %q, want %q", got, syscall.SIGTERM.String()+"\n")
	}
	if stderr := r.stderr.String(); !strings.HasPrefix(stderr, "redsync: lock lost: extension failed") || !strings.Contains(stderr, "stopping") {
		t.Errorf("stderr = %q, want it to start with \"redsync: lock lost: extension failed\" and say it stops the command", stderr)
	}
}
