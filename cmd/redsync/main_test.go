//go:build unix

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

// The tests build the command once and run it against redis-server
// processes of their own. The commands that redsync runs are this test
// binary again, in a child mode chosen by $REDSYNC_TEST_CHILD (see child).

// binary is the path of the redsync command built by TestMain.
var binary string

const childModeEnv = "REDSYNC_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childModeEnv) != "" {
		os.Exit(child(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "redsync-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "redsync")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// child is the test binary run by redsync as COMMAND. args[0] is the mode:
//
//	interval FILE SLEEP  append "start PID NANOS", sleep, append "end PID NANOS"
//	env FILE SLEEP       write the lock's variables to FILE, then sleep
//	signals FILE         write FILE.ready, then wait for SIGTERM or SIGINT,
//	                     append its name to FILE and exit 0
//	ignore FILE          ignore SIGTERM, write FILE.ready, sleep a minute
//	exit CODE            exit with CODE
//	kill                 kill itself with SIGKILL
//
// and, for the processes that COMMAND leaves behind (see background):
//
//	fork PIDFILE MODE [stay]  start a background process in MODE, wait for
//	                          it to write PIDFILE, then exit 0 (with stay:
//	                          sleep a minute)
//	await FILE                write FILE.ready, wait for FILE.go to exist,
//	                          append "end" to FILE and exit 0
//	alive PIDFILE OUT         write to OUT whether the process in PIDFILE
//	                          is alive
func child(args []string) int {
	switch args[0] {
	case "interval":
		d, _ := time.ParseDuration(args[2])
		appendLine(args[1], fmt.Sprintf("start %d %d", os.Getpid(), time.Now().UnixNano()))
		time.Sleep(d)
		appendLine(args[1], fmt.Sprintf("end %d %d", os.Getpid(), time.Now().UnixNano()))
	case "env":
		d, _ := time.ParseDuration(args[2])
		var b strings.Builder
		for _, k := range []string{envName, envValue, envFencing} {
			v, ok := os.LookupEnv(k)
			fmt.Fprintf(&b, "%s %t %s\n", k, ok, v)
		}
		writeAtomic(args[1], b.String())
		time.Sleep(d)
	case "signals":
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		writeAtomic(args[1]+".ready", strconv.Itoa(os.Getpid()))
		select {
		case sig := <-sigs:
			appendLine(args[1], sig.String())
		case <-time.After(time.Minute):
			appendLine(args[1], "timeout")
			return 1
		}
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
		writeAtomic(args[1]+".ready", strconv.Itoa(os.Getpid()))
		time.Sleep(time.Minute)
	case "exit":
		code, _ := strconv.Atoi(args[1])
		return code
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	case "fork":
		return fork(args[1], args[2], len(args) > 3 && args[3] == "stay")
	case "background":
		return background(args[1], args[2])
	case "await":
		writeAtomic(args[1]+".ready", strconv.Itoa(os.Getpid()))
		if !awaitFile(args[1]+".go", time.Minute) {
			return 1
		}
		appendLine(args[1], "end")
	case "alive":
		pid, _ := strconv.Atoi(readString(args[1]))
		writeAtomic(args[2], fmt.Sprint(alive(pid)))
	default:
		fmt.Fprintf(os.Stderr, "child: unknown mode %q\n", args[0])
		return 2
	}
	return 0
}

// fork starts this binary as a background process in the given mode,
// with no standard input or output, and does not wait for it: in mode
// setsid in a session of its own, out of COMMAND's process group.
func fork(pidfile, mode string, stay bool) int {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	bg := exec.Command(self, "background", pidfile, mode)
	bg.SysProcAttr = &syscall.SysProcAttr{Setsid: mode == "setsid"}
	if err := bg.Start(); err != nil {
		panic(err)
	}
	if !awaitFile(pidfile, time.Minute) {
		return 1
	}
	if stay {
		time.Sleep(time.Minute)
	}
	return 0
}

// background writes its PID to pidfile and sleeps a minute. In modes term
// and setsid, SIGTERM ends it after it appends "terminated" to
// pidfile.log; in mode ignore, it ignores SIGTERM.
func background(pidfile, mode string) int {
	sigs := make(chan os.Signal, 1)
	if mode == "ignore" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigs, syscall.SIGTERM)
	}
	writeAtomic(pidfile, strconv.Itoa(os.Getpid()))
	select {
	case <-sigs:
		appendLine(pidfile+".log", "terminated")
	case <-time.After(time.Minute):
	}
	return 0
}

// awaitFile waits up to limit for path to exist.
func awaitFile(path string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
	}
	return false
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// alive reports whether process pid exists and has not exited: on Linux,
// where /proc tells, a process all of whose threads are zombies counts as
// gone, and one whose first thread alone has exited (/proc/PID/stat then
// shows a zombie) runs.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	threads, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true
	}
	for _, th := range threads {
		// A thread whose state cannot be read any more has exited.
		tid, _ := strconv.Atoi(th.Name())
		if state := procState(tid); state != 0 && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// procState returns the state letter of process pid in /proc (R, S, T,
// Z...), or 0 where /proc does not tell.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		panic(err)
	}
}

func writeAtomic(path, content string) {
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		panic(err)
	}
}

// childArgs is the COMMAND part of an exec command line: this binary in
// the given child mode.
func childArgs(mode ...string) []string {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return append([]string{"--", self}, mode...)
}

// proc is one redsync process.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	code   int
}

// start starts redsync with args, and REDIS_ADDRS set to addrs (unless
// empty) plus env.
func start(t *testing.T, addrs string, env []string, args ...string) *proc {
	t.Helper()
	return startWith(t, nil, addrs, env, args...)
}

// startWith is start with the process attributes attr.
func startWith(t *testing.T, attr *syscall.SysProcAttr, addrs string, env []string, args ...string) *proc {
	t.Helper()
	r := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	r.cmd.Env = append(os.Environ(), childModeEnv+"=1", "REDIS_ADDRS="+addrs)
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd.SysProcAttr = attr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting redsync: %v", err)
	}
	go func() {
		defer close(r.done)
		r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
	}()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// wait waits for r to exit and returns its exit status.
func (r *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(60 * time.Second):
		t.Fatalf("redsync %v still runs after 60s; stderr:\n%s", r.cmd.Args[1:], r.stderr.String())
	}
	return 0
}

// runToEnd runs redsync with args to the end.
func runToEnd(t *testing.T, addrs string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	r := start(t, addrs, nil, args...)
	code = r.wait(t)
	return code, r.stdout.String(), r.stderr.String()
}

// cluster starts n redis-servers and returns them with their addresses,
// comma-separated.
func cluster(t *testing.T, n int) ([]*redistest.Server, string) {
	t.Helper()
	servers := redistest.StartN(t, n)
	addrs := make([]string, n)
	for i, s := range servers {
		addrs[i] = s.Addr()
	}
	return servers, strings.Join(addrs, ",")
}

// waitFile waits up to limit for path to exist and returns its content.
// When p is not nil and exits first, it fails with p's stderr.
func waitFile(t *testing.T, path string, limit time.Duration, p *proc) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return string(b)
		}
		if p != nil {
			select {
			case <-p.done:
				t.Fatalf("redsync exited with %d before %s was written; stderr:\n%s", p.code, filepath.Base(path), p.stderr.String())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %v", filepath.Base(path), limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits up to limit for process pid to exit.
func waitGone(t *testing.T, pid int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still exists %v later", pid, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// interval is one run of a child in interval mode.
type interval struct {
	pid        int
	start, end int64 // Unix nanoseconds; end is 0 when it did not end
}

// readIntervals parses the lines of children in interval mode.
func readIntervals(t *testing.T, path string) []interval {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byPid := map[int]*interval{}
	var order []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var (
			kind    string
			pid     int
			nanosec int64
		)
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %d", &kind, &pid, &nanosec); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		iv := byPid[pid]
		if iv == nil {
			iv = &interval{pid: pid}
			byPid[pid] = iv
			order = append(order, pid)
		}
		if kind == "start" {
			iv.start = nanosec
		} else {
			iv.end = nanosec
		}
	}
	var out []interval
	for _, pid := range order {
		out = append(out, *byPid[pid])
	}
	slices.SortFunc(out, func(a, b interval) int { return int(a.start - b.start) })
	return out
}

func TestExecNoOverlap(t *testing.T) {
	_, addrs := cluster(t, 3)
	file := filepath.Join(t.TempDir(), "intervals")
	const n = 4
	runs := make([]*proc, n)
	for i := range runs {
		runs[i] = start(t, addrs, nil, append([]string{"exec", "--wait", "60s", "--ttl", "2s", "no-overlap"}, childArgs("interval", file, "200ms")...)...)
	}
	for i, r := range runs {
		if code := r.wait(t); code != 0 {
			t.Errorf("redsync #%d exit status = %d, want 0; stderr:\n%s", i, code, r.stderr.String())
		}
	}
	ivs := readIntervals(t, file)
	if len(ivs) != n {
		t.Fatalf("%d children ran, want %d", len(ivs), n)
	}
	for i, iv := range ivs {
		if iv.end == 0 {
			t.Errorf("child %d did not end", iv.pid)
		}
		if i > 0 && iv.start < ivs[i-1].end {
			t.Errorf("child %d started %v before child %d ended: the lock was held twice",
				iv.pid, time.Duration(ivs[i-1].end-iv.start), ivs[i-1].pid)
		}
	}
}

func TestExecKilledHolder(t *testing.T) {
	_, addrs := cluster(t, 3)
	file := filepath.Join(t.TempDir(), "intervals")
	const ttl = 2 * time.Second
	holder := start(t, addrs, nil, append([]string{"exec", "--wait", "20s", "--ttl", ttl.String(), "killed"}, childArgs("interval", file, "60s")...)...)
	waitFile(t, file, 20*time.Second, holder)
	// Let an extension or two happen: the lock must expire even so.
	time.Sleep(ttl / 2)
	killed := time.Now()
	holder.cmd.Process.Signal(syscall.SIGKILL)
	if code := holder.wait(t); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("killed redsync exit status = %d, want %d", code, 128+int(syscall.SIGKILL))
	}
	first := readIntervals(t, file)[0]
	// Without redsync nothing extends the lock: the command dies with it.
	waitGone(t, first.pid, 5*time.Second)

	next := start(t, addrs, nil, append([]string{"exec", "--wait", "20s", "--ttl", ttl.String(), "killed"}, childArgs("interval", file, "0s")...)...)
	if code := next.wait(t); code != 0 {
		t.Fatalf("next redsync exit status = %d, want 0; stderr:\n%s", code, next.stderr.String())
	}
	ivs := readIntervals(t, file)
	if len(ivs) != 2 {
		t.Fatalf("%d children ran, want 2", len(ivs))
	}
	// The last extension was at most ttl/3 before the kill, so the key
	// lived at least 2/3 of the ttl after it.
	waited := time.Duration(ivs[1].start - killed.UnixNano())
	if waited < 2*ttl/3-100*time.Millisecond || waited > ttl+5*time.Second {
		t.Errorf("next holder started %v after the kill, want between 2/3 of the ttl (%v) and the ttl plus slack", waited, 2*ttl/3)
	}
}

func TestExecLockLost(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		grace    time.Duration
		wantFile string // what the child recorded; "" for nothing
	}{
		{"the command stops on SIGTERM", "signals", 5 * time.Second, "terminated\n"},
		{"the command ignores SIGTERM and is killed", "ignore", 300 * time.Millisecond, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers, addrs := cluster(t, 3)
			file := filepath.Join(t.TempDir(), "signals")
			const ttl = 6 * time.Second
			r := start(t, addrs, nil, append([]string{"exec", "--wait", "20s", "--ttl", ttl.String(), "--grace", tt.grace.String(), "lost"}, childArgs(tt.mode, file)...)...)
			pid, _ := strconv.Atoi(waitFile(t, file+".ready", 20*time.Second, r))
			for _, s := range servers[:2] {
				s.MustDo(t, "DEL", "lost")
			}
			deleted := time.Now()
			if code := r.wait(t); code != exitLost {
				t.Fatalf("exit status after the lock was deleted on 2 of 3 nodes = %d, want %d; stderr:\n%s", code, exitLost, r.stderr.String())
			}
			// An extension every ttl/3 finds the key gone; then SIGTERM,
			// and SIGKILL after the grace.
			if took := time.Since(deleted); took > ttl+tt.grace+10*time.Second {
				t.Errorf("redsync exited %v after the lock was deleted, want within the ttl, the grace and slack", took)
			}
			waitGone(t, pid, 5*time.Second)
			got, _ := os.ReadFile(file)
			if string(got) != tt.wantFile {
				t.Errorf("the command recorded %q, want %q", got, tt.wantFile)
			}
			if stderr := r.stderr.String(); !strings.HasPrefix(stderr, "redsync: lock lost: extension failed") || !strings.Contains(stderr, "stopping") {
				t.Errorf("stderr = %q, want it to start with \"redsync: lock lost: extension failed\" and say it stops the command", stderr)
			}
		})
	}
}

func TestExecForwardsSignals(t *testing.T) {
	servers, addrs := cluster(t, 3)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "signals")
			r := start(t, addrs, nil, append([]string{"exec", "--wait", "20s", "forward"}, childArgs("signals", file)...)...)
			waitFile(t, file+".ready", 20*time.Second, r)
			r.cmd.Process.Signal(sig)
			if code := r.wait(t); code != 0 {
				t.Fatalf("exit status = %d, want the command's 0; stderr:\n%s", code, r.stderr.String())
			}
			if got, _ := os.ReadFile(file); string(got) != sig.String()+"\n" {
				t.Errorf("the command recorded %q, want %q", got, sig.String()+"\n")
			}
			for i, s := range servers {
				if n := s.MustDo(t, "EXISTS", "forward").Int; n != 0 {
					t.Errorf("node %d: the lock key exists after redsync exited", i)
				}
			}
		})
	}

	t.Run("while waiting", func(t *testing.T) {
		for _, s := range servers {
			s.MustDo(t, "SET", "waiting", "someone else", "PX", "60000")
		}
		r := start(t, addrs, nil, append([]string{"exec", "--wait", "60s", "waiting"}, childArgs("exit", "0")...)...)
		time.Sleep(500 * time.Millisecond)
		r.cmd.Process.Signal(syscall.SIGINT)
		if code := r.wait(t); code != 128+int(syscall.SIGINT) {
			t.Errorf("exit status of redsync interrupted while waiting = %d, want %d", code, 128+int(syscall.SIGINT))
		}
		if v := servers[0].MustDo(t, "GET", "waiting").Str; v != "someone else" {
			t.Errorf("lock value after the interrupted wait = %q, want the other owner's", v)
		}
	})
}

// envOf parses the file written by a child in env mode.
func envOf(t *testing.T, content string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for line := range strings.Lines(content) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 3)
		if len(f) != 3 {
			t.Fatalf("bad env line %q", line)
		}
		if f[1] == "true" {
			env[f[0]] = f[2]
		}
	}
	return env
}

func TestExecEnvironment(t *testing.T) {
	servers, addrs := cluster(t, 3)
	dir := t.TempDir()

	var last uint64
	var values []string
	for i := range 3 {
		file := filepath.Join(dir, fmt.Sprint("env", i))
		r := start(t, addrs, []string{envFencing + "=999"}, append([]string{"exec", "--wait", "20s", "--fencing", "fenced"}, childArgs("env", file, "300ms")...)...)
		env := envOf(t, waitFile(t, file, 20*time.Second, r))
		for j, s := range servers {
			if v := s.MustDo(t, "GET", "fenced").Str; v != env[envValue] {
				t.Errorf("run %d: node %d holds %q while the command runs, want %s = %q", i, j, v, envValue, env[envValue])
			}
		}
		if code := r.wait(t); code != 0 {
			t.Fatalf("run %d: exit status = %d, want 0; stderr:\n%s", i, code, r.stderr.String())
		}
		if env[envName] != "fenced" || env[envValue] == "" || slices.Contains(values, env[envValue]) {
			t.Errorf("run %d: %s = %q, %s = %q; want \"fenced\" and a fresh value", i, envName, env[envName], envValue, env[envValue])
		}
		values = append(values, env[envValue])
		token, err := strconv.ParseUint(env[envFencing], 10, 64)
		if err != nil || token <= last || token == 999 {
			t.Errorf("run %d: %s = %q, want a token above %d", i, envFencing, env[envFencing], last)
		}
		last = token
	}

	// Without --fencing there is no token, even an inherited one.
	file := filepath.Join(dir, "plain")
	r := start(t, addrs, []string{envFencing + "=999"}, append([]string{"exec", "--wait", "20s", "plain"}, childArgs("env", file, "0s")...)...)
	if code := r.wait(t); code != 0 {
		t.Fatalf("exit status = %d, want 0; stderr:\n%s", code, r.stderr.String())
	}
	if v, ok := envOf(t, waitFile(t, file, time.Second, nil))[envFencing]; ok {
		t.Errorf("without --fencing, %s = %q, want it unset", envFencing, v)
	}
}

func TestExecExitStatus(t *testing.T) {
	servers, addrs := cluster(t, 3)
	for _, s := range servers {
		s.MustDo(t, "SET", "taken", "someone else", "PX", "600000")
	}
	notExecutable := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644)
	closed := "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"

	tests := []struct {
		name       string
		addrs      string
		args       []string
		want       int
		wantStderr string // a prefix; "" for an empty stderr
		minTime    time.Duration
	}{
		{"the command's status", addrs, append([]string{"exec", "a"}, childArgs("exit", "3")...), 3, "", 0},
		{"a command killed by a signal", addrs, append([]string{"exec", "a"}, childArgs("kill")...), 128 + int(syscall.SIGKILL), "", 0},
		{"held elsewhere", addrs, append([]string{"exec", "taken"}, childArgs("exit", "0")...), exitNotObtained, `redsync: lock "taken" is held elsewhere; not obtained at once`, 0},
		{"held elsewhere, quiet", addrs, append([]string{"exec", "--quiet", "taken"}, childArgs("exit", "0")...), exitNotObtained, "", 0},
		{"held elsewhere after --wait", addrs, append([]string{"exec", "--wait", "300ms", "taken"}, childArgs("exit", "0")...), exitNotObtained, `redsync: lock "taken" is held elsewhere; not obtained within 300ms`, 300 * time.Millisecond},
		{"nodes unreachable", closed, append([]string{"exec", "a"}, childArgs("exit", "0")...), exitUnavailable, `redsync: lock "a" not obtained: 3 of 3 nodes failed`, 0},
		{"command not found", addrs, []string{"exec", "a", "--", "no-such-command-anywhere"}, exitNotFound, "redsync: no-such-command-anywhere: command not found", 0},
		{"command not executable", addrs, []string{"exec", "a", "--", notExecutable}, exitNotExec, "redsync: " + notExecutable + ": permission denied", 0},
		{"no arguments", addrs, nil, exitUsage, "redsync: no command\nusage: redsync exec", 0},
		{"unknown command", addrs, []string{"lock", "a"}, exitUsage, `redsync: unknown command "lock"`, 0},
		{"no NAME", addrs, []string{"exec"}, exitUsage, "redsync: exec: no lock NAME", 0},
		{"no COMMAND", addrs, []string{"exec", "a", "--"}, exitUsage, "redsync: exec: no COMMAND after NAME", 0},
		{"unknown flag", addrs, []string{"exec", "--nope", "a", "--", "true"}, exitUsage, "redsync: flag provided but not defined: -nope", 0},
		{"bad ttl", addrs, []string{"exec", "--ttl", "0s", "a", "--", "true"}, exitUsage, "redsync: exec: --ttl is 0s; it must be positive", 0},
		{"ttl too short", addrs, []string{"exec", "--ttl", "2ms", "a", "--", "true"}, exitUsage, "redsync: exec: invalid configuration:", 0},
		{"no nodes", "", []string{"exec", "a", "--", "true"}, exitUsage, "redsync: exec: no Redis nodes", 0},
		{"bad node", "redis://u:secret@127.0.0.1:1/db", []string{"exec", "a", "--", "true"}, exitUsage, "redsync: exec: node redis://u:xxxxx@127.0.0.1:1/db:", 0},
		{"a node twice", "127.0.0.1:1,127.0.0.1:1", []string{"exec", "a", "--", "true"}, exitUsage, "redsync: exec: node 127.0.0.1:1 is given twice", 0},
		{"grace as long as the ttl", addrs, []string{"exec", "--ttl", "2s", "--grace", "2s", "a", "--", "true"}, exitUsage, "redsync: exec: --grace 2s is not shorter than --ttl 2s", 0},
		{"grace longer than the default ttl", addrs, []string{"exec", "--grace", "10s", "a", "--", "true"}, exitUsage, "redsync: exec: --grace 10s is not shorter than --ttl 8s", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			code, _, stderr := runToEnd(t, tt.addrs, tt.args...)
			if code != tt.want {
				t.Errorf("exit status = %d, want %d; stderr:\n%s", code, tt.want, stderr)
			}
			if tt.wantStderr == "" && stderr != "" || !strings.HasPrefix(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to start with %q", stderr, tt.wantStderr)
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("stderr shows the password: %q", stderr)
			}
			if took := time.Since(began); took < tt.minTime {
				t.Errorf("redsync exited after %v, want at least %v", took, tt.minTime)
			}
		})
	}
	for i, s := range servers {
		if v := s.MustDo(t, "GET", "taken").Str; v != "someone else" {
			t.Errorf("node %d: the other owner's lock = %q after the failed tries, want it untouched", i, v)
		}
	}
}

// states returns the STATE column of the table printed by status.
func states(stdout string) []string {
	var s []string
	for line := range strings.Lines(stdout) {
		if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(line, "NODE") && !strings.HasPrefix(line, "lock ") {
			s = append(s, f[1])
		}
	}
	return s
}

func TestStatus(t *testing.T) {
	servers, addrs := cluster(t, 3)

	code, stdout, stderr := runToEnd(t, addrs, "status", "st")
	if code != exitNotHeld || stderr != "" {
		t.Errorf("status of a free lock: exit status %d, stderr %q; want %d, empty", code, stderr, exitNotHeld)
	}
	if !slices.Equal(states(stdout), []string{"free", "free", "free"}) || !strings.Contains(stdout, `lock "st": not held by a quorum`) {
		t.Errorf("status of a free lock printed:\n%s", stdout)
	}

	file := filepath.Join(t.TempDir(), "env")
	holder := start(t, addrs, nil, append([]string{"exec", "--wait", "20s", "--ttl", "5s", "st"}, childArgs("env", file, "60s")...)...)
	value := envOf(t, waitFile(t, file, 20*time.Second, holder))[envValue]

	code, stdout, _ = runToEnd(t, addrs, "status", "st")
	if code != exitHeld || !slices.Equal(states(stdout), []string{"held", "held", "held"}) || strings.Count(stdout, value) != 3 ||
		!strings.Contains(stdout, `lock "st": held by a quorum (3 of 3 nodes, quorum 2), for `) {
		t.Errorf("status of a held lock: exit status %d (want %d), printed:\n%s", code, exitHeld, stdout)
	}
	lines := strings.Split(stdout, "\n")
	if !strings.HasPrefix(lines[0], "NODE") || !strings.HasPrefix(lines[1], servers[0].Addr()+" ") {
		t.Errorf("status table starts with %q, %q; want a header, then node 0", lines[0], lines[1])
	}

	if code, stdout, _ := runToEnd(t, addrs, "status", "--quiet", "st"); code != exitHeld || stdout != "" {
		t.Errorf("status --quiet: exit status %d, stdout %q; want %d, empty", code, stdout, exitHeld)
	}

	servers[2].Kill()
	code, stdout, _ = runToEnd(t, addrs, "status", "st")
	if code != exitHeld || !slices.Equal(states(stdout), []string{"held", "held", "error"}) || !strings.Contains(stdout, "connection refused") {
		t.Errorf("status with one node of 3 down: exit status %d (want %d), printed:\n%s", code, exitHeld, stdout)
	}
	holder.cmd.Process.Signal(syscall.SIGTERM)
	holder.wait(t)
	code, stdout, _ = runToEnd(t, addrs, "status", "st")
	if code != exitNotHeld {
		t.Errorf("status after the release, one node down: exit status %d, want %d; printed:\n%s", code, exitNotHeld, stdout)
	}
	servers[1].Kill()
	code, stdout, _ = runToEnd(t, addrs, "status", "st")
	if code != exitUnavailable || !strings.Contains(stdout, `lock "st": unknown: 2 of 3 nodes failed`) {
		t.Errorf("status with 2 nodes of 3 down: exit status %d (want %d), printed:\n%s", code, exitUnavailable, stdout)
	}

	servers[0].MustDo(t, "RPUSH", "list", "x")
	code, stdout, _ = runToEnd(t, servers[0].Addr(), "status", "list")
	if code != exitUnavailable || !strings.Contains(stdout, "error  -    the key is not a lock (WRONGTYPE)") {
		t.Errorf("status of a list key: exit status %d (want %d), printed:\n%s", code, exitUnavailable, stdout)
	}

	for _, args := range [][]string{{"status"}, {"status", "a", "b"}, {"status", "--ttl", "1s", "a"}} {
		if code, _, stderr := runToEnd(t, addrs, args...); code != exitUsage || !strings.HasPrefix(stderr, "redsync: ") {
			t.Errorf("redsync %v: exit status %d, stderr %q; want %d, a usage error", args, code, stderr, exitUsage)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"help", "exec"}, {"exec", "-h"}, {"status", "--help"}} {
		code, stdout, stderr := runToEnd(t, "", args...)
		if code != 0 || stderr != "" || stdout != helpText {
			t.Errorf("redsync %v: exit status %d, stderr %q, help on stdout %t; want 0, empty, true", args, code, stderr, stdout == helpText)
		}
	}
	for _, section := range []string{"usage: redsync exec", "\nFlags:\n", "--nodes", "(default 8s)", "(default TTL/2: 4s)", "\nEnvironment:\n", "REDIS_ADDRS", "\nExit status:\n", " 75 ", " 76 ", "\nExamples:\n"} {
		if !strings.Contains(helpText, section) {
			t.Errorf("help text lacks %q", section)
		}
	}
}
