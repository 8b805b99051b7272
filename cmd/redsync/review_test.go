//go:build linux

package main

// Tests from a review that tried to break the promises of docs/CLI.md
// ("What exec guarantees", "Nodes", passwords). Each one failed on the
// code the review read; its comment says what the defect was (fixed
// since) and which promise the test checks.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

// The review tests' own child modes: this test binary run with a first
// argument "review:MODE". They are dispatched before TestMain (and before
// the child modes of main_test.go).
func init() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "review:") {
		os.Exit(reviewChild(strings.TrimPrefix(os.Args[1], "review:"), os.Args[2:]))
	}
}

// reviewChild runs one child mode of the review tests:
//
//	reuse PIDFILE           COMMAND: start "reuse-helper" in a session of its
//	                        own and exit 0 once it has written PIDFILE.ready
//	reuse-helper PID PIDFILE  catch SIGTERM, write PIDFILE.ready, wait
//	                        until PID (COMMAND) is reaped, then start
//	                        "sleeper" so that it gets PID again (through
//	                        /proc/sys/kernel/ns_last_pid), write PID to
//	                        PIDFILE and exit, the first thread 300ms before
//	                        the others; on failure write the reason to
//	                        PIDFILE.failed
//	sleeper                 sleep a minute (SIGTERM ends it)
//	leaderless PIDFILE      COMMAND: start "leaderless-bg" in a session of
//	                        its own and exit 0 once it has written PIDFILE
//	leaderless-bg PIDFILE   end the first thread alone, then write PID to
//	                        PIDFILE and wait a minute for SIGTERM, which
//	                        appends "terminated" to PIDFILE.log and exits
func reviewChild(mode string, args []string) int {
	switch mode {
	case "leaderless":
		self, _ := os.Executable()
		bg := exec.Command(self, "review:leaderless-bg", args[0])
		bg.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := bg.Start(); err != nil || !awaitFile(args[0], time.Minute) {
			return 1
		}
		return 0
	case "leaderless-bg":
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		exitFirstThread(func() {
			writeAtomic(args[0], strconv.Itoa(os.Getpid()))
			select {
			case <-sigs:
				appendLine(args[0]+".log", "terminated")
			case <-time.After(time.Minute):
			}
		})
	case "reuse":
		self, _ := os.Executable()
		h := exec.Command(self, "review:reuse-helper", strconv.Itoa(os.Getpid()), args[0])
		h.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := h.Start(); err != nil {
			writeAtomic(args[0]+".failed", err.Error())
			return 1
		}
		// The SIGTERM that redsync sends the helper once COMMAND has
		// exited must not come before the helper catches it.
		if !awaitFile(args[0]+".ready", time.Minute) {
			writeAtomic(args[0]+".failed", "the helper did not start")
			return 1
		}
		return 0
	case "reuse-helper":
		// Caught, not ignored: the sleeper starts with SIGTERM's default
		// action, which ends it as soon as redsync sees it.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM)
		pid, _ := strconv.Atoi(args[0])
		pidfile := args[1]
		writeAtomic(pidfile+".ready", "")
		// COMMAND's PID is free once redsync has reaped it.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				writeAtomic(pidfile+".failed", "COMMAND was not reaped within 20s")
				return 1
			}
		}
		self, _ := os.Executable()
		for range 3000 {
			if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
				writeAtomic(pidfile+".failed", "cannot choose the next PID: "+err.Error())
				return 1
			}
			c := exec.Command(self, "review:sleeper")
			if err := c.Start(); err != nil {
				continue
			}
			if c.Process.Pid == pid {
				writeAtomic(pidfile, strconv.Itoa(pid))
				// The sleeper, with COMMAND's PID, becomes redsync's once
				// the helper's last thread has exited. A loaded machine
				// may take a while to end the other threads after the
				// first one (the loss seen once in eight runs); the
				// helper takes 300ms.
				exitFirstThread(func() { time.Sleep(300 * time.Millisecond) })
			}
			c.Process.Kill()
			c.Wait()
		}
		writeAtomic(pidfile+".failed", "the PID was always taken by another process")
		return 1
	case "sleeper":
		time.Sleep(time.Minute)
		return 0
	}
	fmt.Fprintf(os.Stderr, "review child: unknown mode %q\n", mode)
	return 2
}

// exitFirstThread ends the calling thread, the process's first, alone
// (as a C program's main thread may, with pthread_exit), runs then on
// another thread, and exits the process. /proc/PID/stat, which shows the
// first thread, reads "Z" from then on. It must be called in init, where
// Go keeps the main goroutine on the first thread, and does not return.
func exitFirstThread(then func()) {
	go func() {
		for procState(os.Getpid()) != 'Z' {
			time.Sleep(time.Millisecond)
		}
		then()
		os.Exit(0)
	}()
	// exit(2), unlike exit_group(2) (os.Exit), ends the calling thread
	// alone.
	syscall.Syscall(syscall.SYS_EXIT, 0, 0, 0)
	select {}
}

// startBrokenStderr starts redsync as start does, but with its standard
// error a pipe whose reading end is closed: a log reader that went away
// (`2>&1 | head`, a restarted journald or logger).
func startBrokenStderr(t *testing.T, addrs string, args ...string) *proc {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	r := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	r.cmd.Env = append(os.Environ(), childModeEnv+"=1", "REDIS_ADDRS="+addrs)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting redsync: %v", err)
	}
	pw.Close()
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

// The defect (fixed since): redsync did not handle SIGPIPE, so (as for
// any Go program) its first write to a standard error that is a broken
// pipe killed it. It wrote its message ("COMMAND exited; stopping the
// processes it left", "lock lost; stopping") before it signalled the job:
// it died at that point, so a process that had left the group was never
// stopped and ran on without the lock, and a loss exited 141 instead of
// 76, without SIGTERM.
//
// The promise: whatever becomes of redsync's messages, the processes
// COMMAND left are stopped before the lock is released and redsync exits
// with COMMAND's status; after a loss, the job gets SIGTERM and redsync
// exits 76.
func TestExecBrokenStderr(t *testing.T) {
	t.Run("leftover after COMMAND exits", func(t *testing.T) {
		_, addrs := cluster(t, 3)
		dir := t.TempDir()
		pidfile, out := filepath.Join(dir, "pid"), filepath.Join(dir, "alive")
		killOnCleanup(t, pidfile)
		first := startBrokenStderr(t, addrs, append([]string{"exec", "--ttl", "3s", "--grace", "1s", "pipe"}, childArgs("fork", pidfile, "setsid")...)...)
		waitFile(t, pidfile, 20*time.Second, nil)
		code := first.wait(t)
		next := start(t, addrs, nil, append([]string{"exec", "--wait", "30s", "pipe"}, childArgs("alive", pidfile, out)...)...)
		if c := next.wait(t); c != 0 {
			t.Fatalf("next holder: exit status %d, want 0; stderr:\n%s", c, next.stderr.String())
		}
		if code != 0 {
			t.Errorf("exit status with a broken stderr = %d, want COMMAND's 0", code)
		}
		if got := readString(out); got != "false" {
			t.Errorf("the process that COMMAND left (setsid) was alive (%q) when the next holder ran its command: redsync died of SIGPIPE before stopping it", got)
		}
	})
	t.Run("lock lost", func(t *testing.T) {
		servers, addrs := cluster(t, 3)
		file := filepath.Join(t.TempDir(), "signals")
		r := startBrokenStderr(t, addrs, append([]string{"exec", "--ttl", "3s", "--grace", "1s", "pipe-lost"}, childArgs("signals", file)...)...)
		waitFile(t, file+".ready", 20*time.Second, r)
		for _, s := range servers[:2] {
			s.MustDo(t, "DEL", "pipe-lost")
		}
		if code := r.wait(t); code != exitLost {
			t.Errorf("exit status after the lock was lost, with a broken stderr = %d, want %d", code, exitLost)
		}
		if got := readString(file); got != "terminated\n" {
			t.Errorf("COMMAND recorded %q, want %q: it never got SIGTERM", got, "terminated\n")
		}
	})
}

// linkLocal returns an IPv6 link-local address of one of this host's
// interfaces, with its zone.
func linkLocal(t *testing.T) string {
	t.Helper()
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() == nil && n.IP.IsLinkLocalUnicast() {
				ip, _ := netip.AddrFromSlice(n.IP)
				return ip.WithZone(ifc.Name).String()
			}
		}
	}
	t.Skip("no interface with an IPv6 link-local address")
	return ""
}

// The defect (fixed since): an interface's link-local address is written
// with its zone ([fe80::1%eth0]); netip keeps the zone, and the map of
// this host's addresses held them without, so the entry was not seen as
// this host: a server listening on all addresses was accepted twice, as
// 127.0.0.1:P and [fe80::...%eth0]:P, and voted twice.
//
// The promise: all addresses of this host count as one, a link-local one
// with its interface's zone too, and two entries that reach one server are
// refused with exit 64 before redsync connects to either.
func TestNodesLinkLocalZoneSameServer(t *testing.T) {
	ll := linkLocal(t)
	ln, err := net.Listen("tcp", ":0") // all addresses, IPv4 and IPv6: one server
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			t.Cleanup(func() { c.Close() })
		}
	}()
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ll, port), 2*time.Second)
	if err != nil {
		t.Skipf("the link-local address %s is not reachable here: %v", ll, err)
	}
	c.Close()
	for deadline := time.Now().Add(2 * time.Second); accepted.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}

	nodes := "127.0.0.1:" + port + ",[" + ll + "]:" + port
	for _, cmd := range [][]string{{"status", "same"}, {"exec", "same", "--", "true"}} {
		t.Run(cmd[0], func(t *testing.T) {
			before := accepted.Load()
			code, stdout, stderr := runToEnd(t, "", append([]string{cmd[0], "--nodes", nodes}, cmd[1:]...)...)
			if code != exitUsage || !strings.Contains(stderr, "is given twice") {
				t.Errorf("redsync %s --nodes %s: exit status %d, want %d (one server given twice); output:\n%s%s", cmd[0], nodes, code, exitUsage, stdout, stderr)
			}
			time.Sleep(50 * time.Millisecond)
			if n := accepted.Load() - before; n > 0 {
				t.Errorf("redsync %s connected %d times to the one server behind both entries", cmd[0], n)
			}
		})
	}
}

// The defect (fixed since): the node list is cut at every comma before any
// URL is parsed, so a password with a comma was cut in two, and its first
// half was printed as the "node" that did not parse.
//
// The promise: redsync never prints a password, also not from addresses
// that do not parse; a piece of the list that may be part of one is named
// by its place only.
func TestNodesPasswordWithCommaHidden(t *testing.T) {
	const nodes = "redis://u:Pw1cret,Pw2cret@127.0.0.1:1,redis://127.0.0.1:2,redis://127.0.0.1:3"
	for _, cmd := range [][]string{{"exec", "a", "--", "true"}, {"status", "a"}} {
		t.Run(cmd[0], func(t *testing.T) {
			_, stdout, stderr := runToEnd(t, nodes, cmd...)
			if strings.Contains(stdout+stderr, "Pw1cret") || strings.Contains(stdout+stderr, "Pw2cret") {
				t.Errorf("redsync %s shows (part of) the password:\n%s%s", cmd[0], stdout, stderr)
			}
		})
	}
}

// The defect (fixed since): the label hid the password, but a HOST:PORT
// entry with user information was taken as it was (net.SplitHostPort
// accepts "PASSWORD@HOST:PORT" and "[USER:PASSWORD@HOST]:PORT"), and the
// dial error ("lookup PASSWORD@HOST: no such host") and the "given twice"
// message (which named the unresolved host) printed it.
//
// The promise: a HOST:PORT entry with an @ is refused with exit 64, and
// no message shows what comes before its last @.
func TestNodesPasswordInHostPortHidden(t *testing.T) {
	tests := []struct{ name, nodes string }{
		{"a lone password, the dial error", "hunter2xyz@127.0.0.1:1"},
		{"user and password in brackets, the dial error", "[u:hunter2xyz@127.0.0.1]:1"},
		{"given twice", "hunter2xyz@127.0.0.1:1,hunter2xyz@127.0.0.1:1"},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"exec", "a", "--", "true"}, {"status", "a"}} {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				_, stdout, stderr := runToEnd(t, tt.nodes, cmd...)
				if strings.Contains(strings.ToLower(stdout+stderr), "hunter2xyz") {
					t.Errorf("redsync %s --nodes %s shows the password:\n%s%s", cmd[0], tt.nodes, stdout, stderr)
				}
			})
		}
	}
}

// The defect (fixed since): a Redis server with a TLS port (tls-port) is
// one server behind two ports of this host; the check compared address
// and port only, so redis://127.0.0.1:PORT and rediss://127.0.0.1:TLSPORT
// were accepted together, and a key on that one server counted as a
// quorum of 2 of 3.
//
// The promise: entries are told apart by the server they reach, also by
// the run_id it answers with; two entries of one server are refused with
// exit 64 before any lock command is sent.
func TestNodesTLSPortSameServer(t *testing.T) {
	caCert, serverCert, serverKey := writeCA(t)
	const password = "pw-dual"
	dual, tlsAddr := startTLS(t, caCert, serverCert, serverKey, password)
	other := redistest.Start(t)
	nodes := "redis://:" + password + "@" + dual.Addr() + ",rediss://:" + password + "@" + tlsAddr + "," + other.Addr()

	dual.MustDo(t, "SET", "dual", "someone", "PX", "60000") // on one server of two
	code, stdout, stderr := runToEnd(t, nodes, "status", "--cacert", caCert, "dual")
	if code != exitUsage {
		t.Errorf("status with one server given as its plain and its TLS port: exit status %d, want %d; printed:\n%s%s", code, exitUsage, stdout, stderr)
	}
	code, _, stderr = runToEnd(t, nodes, "exec", "--cacert", caCert, "free", "--", "true")
	if code != exitUsage {
		t.Errorf("exec with one server given as its plain and its TLS port: exit status %d, want %d; stderr:\n%s", code, exitUsage, stderr)
	}
}

// chainScript starts, in a session of its own, the next level of a chain
// of processes, records its PID and becomes a sleep that ignores SIGTERM.
const chainScript = `exec </dev/null >/dev/null 2>&1
d=$1; dir=$2
trap '' TERM
if [ "$d" -gt 0 ]; then setsid sh "$0" $((d-1)) "$dir" & fi
echo $$ > "$dir/p$d.tmp" && mv "$dir/p$d.tmp" "$dir/p$d"
exec sleep 60
`

// The defect (fixed since): redsync counted its patience (killPatience,
// 1 s) from the first SIGKILL, not from the job's last progress: processes
// that left the group are adopted, and killed, one generation at a time as
// their parents die, so a job whose processes form a chain of sessions
// (each one started by the one before with setsid) was still being killed
// when the second was over. redsync gave up on processes of its own user
// that it could signal, exited 76, and they ran on without the lock.
//
// The promise: when the lock is lost, the job gets SIGTERM, then SIGKILL,
// and redsync gives up only on processes that survive SIGKILL (another
// user's); every process it can kill is gone when it exits.
func TestExecKillsChainOfSessions(t *testing.T) {
	// About 25 ms per generation here: 40 generations outlast the second;
	// 300 leave a wide margin on a faster machine.
	const depth = 300
	servers, addrs := cluster(t, 3)
	dir := t.TempDir()
	script := filepath.Join(dir, "chain.sh")
	if err := os.WriteFile(script, []byte(chainScript), 0o644); err != nil {
		t.Fatal(err)
	}
	pids := func() []int {
		var out []int
		for i := 0; i <= depth; i++ {
			if pid, err := strconv.Atoi(strings.TrimSpace(readString(filepath.Join(dir, fmt.Sprint("p", i))))); err == nil {
				out = append(out, pid)
			}
		}
		return out
	}
	t.Cleanup(func() {
		for _, pid := range pids() {
			if alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	r := start(t, addrs, nil, "exec", "--ttl", "6s", "--grace", "500ms", "chain", "--", "sh", script, fmt.Sprint(depth), dir)
	waitFile(t, filepath.Join(dir, "p0"), 30*time.Second, r)
	for _, s := range servers[:2] {
		s.MustDo(t, "DEL", "chain")
	}
	code := r.wait(t)
	var survivors []int
	for _, pid := range pids() {
		if alive(pid) {
			survivors = append(survivors, pid)
		}
	}
	if len(survivors) > 0 {
		t.Errorf("after the loss, redsync exited %d while %d processes of the job (its own user's, which SIGKILL ends) still ran; stderr:\n%s",
			code, len(survivors), r.stderr.String())
	}
}

// The defect (fixed since): a query parameter that the driver does not
// know, such as ?password=..., was printed in full with the error that it
// caused.
//
// The promise: redsync never prints a password, also not one given in a
// URL's query; the parameter is named, its value hidden.
func TestNodesQueryPasswordHidden(t *testing.T) {
	const nodes = "redis://127.0.0.1:1?password=hunter2xyz,redis://127.0.0.1:2,redis://127.0.0.1:3"
	for _, cmd := range [][]string{{"exec", "a", "--", "true"}, {"status", "a"}} {
		t.Run(cmd[0], func(t *testing.T) {
			code, stdout, stderr := runToEnd(t, nodes, cmd...)
			if code != exitUsage || strings.Contains(stdout+stderr, "hunter2xyz") || !strings.Contains(stderr, "password=xxxxx") {
				t.Errorf("redsync %s --nodes %s: exit status %d (want %d), printed:\n%s%s", cmd[0], nodes, code, exitUsage, stdout, stderr)
			}
		})
	}
}

// The check of TestNodesTLSPortSameServer asks every node for its run_id
// with INFO. The promise (docs/CLI.md, Nodes): a user that may not run
// INFO still works; redsync says on standard error that the node is not
// checked, without its password, and goes on.
func TestNodesInfoRefusedWarns(t *testing.T) {
	servers, _ := cluster(t, 3)
	const password = "pw-noinfo"
	servers[0].MustDo(t, "ACL", "SETUSER", "noinfo", "on", ">"+password, "~*", "&*", "+@all", "-info")
	nodes := "redis://noinfo:" + password + "@" + servers[0].Addr() + "," + servers[1].Addr() + "," + servers[2].Addr()
	file := filepath.Join(t.TempDir(), "env")
	r := start(t, nodes, nil, append([]string{"exec", "noinfo"}, childArgs("env", file, "0s")...)...)
	code := r.wait(t)
	stderr := r.stderr.String()
	if code != 0 || readString(file) == "" {
		t.Errorf("exec with a user that may not run INFO: exit status %d, want 0 and COMMAND run; stderr:\n%s", code, stderr)
	}
	want := "redsync: warning: node redis://noinfo:xxxxx@" + servers[0].Addr() + " refused INFO"
	if !strings.HasPrefix(stderr, want) || strings.Contains(stderr, password) {
		t.Errorf("stderr = %q, want it to start with %q and not show the password", stderr, want)
	}
}

// The defect (fixed since): redsync ran as its own guard when
// REDSYNC_INTERNAL_GUARD=1 was in its environment, so that exec exited 0
// at once without running COMMAND.
//
// The promise: nothing in the environment keeps exec from running
// COMMAND and exiting with its status.
func TestExecGuardVariableIgnored(t *testing.T) {
	_, addrs := cluster(t, 3)
	r := start(t, addrs, []string{"REDSYNC_INTERNAL_GUARD=1"}, append([]string{"exec", "guard-env"}, childArgs("exit", "3")...)...)
	if code := r.wait(t); code != 3 {
		t.Errorf("exec with REDSYNC_INTERNAL_GUARD=1 set: exit status %d, want COMMAND's 3; stderr:\n%s", code, r.stderr.String())
	}
}
