//go:build unix

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// A guard is a second redsync process that kills COMMAND's process group
// when redsync dies without finishing its work, as when it gets SIGKILL:
// nothing extends the lock any more, and no process of the group may
// outlive it. (The parent-death signal of COMMAND reaches COMMAND alone.)
//
// redsync starts the guard before COMMAND, with a pipe for its standard
// input. It writes the process group's ID there once COMMAND runs, and
// "done" once the group is gone (then the group's ID may be reused by
// another group), or when redsync has finished its work. The guard reads
// to the end of the pipe, which comes when redsync exits in whatever
// way: with a group and no "done", it sends SIGKILL to the group. The
// guard runs in a process group of its own and ignores the signals of the
// terminal, so that what stops redsync's job does not stop it too. A
// guard's methods are called from one goroutine.
type guard struct {
	cmd  *exec.Cmd
	w    *os.File // the pipe to the guard's standard input
	done bool     // "done" was written
}

// guardArg is the argument that makes redsync run as a guard, followed by
// the PID of the redsync that started it. A guard checks that this is its
// parent, so that no command line typed by hand is taken for one.
const guardArg = "--redsync-internal-guard"

// isGuard reports whether args, redsync's command line, start a guard.
func isGuard(args []string) bool {
	return len(args) == 3 && args[1] == guardArg && args[2] == strconv.Itoa(os.Getppid())
}

// startGuard starts a guard.
func startGuard() (*guard, error) {
	path, err := selfPath()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(path, guardArg, strconv.Itoa(os.Getpid()))
	cmd.Args[0] = "redsync"
	cmd.Env = []string{}
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	return &guard{cmd: cmd, w: w}, nil
}

// pid is the guard's process ID.
func (g *guard) pid() int {
	return g.cmd.Process.Pid
}

// watch tells the guard the process group to kill if redsync dies.
func (g *guard) watch(pgid int) error {
	_, err := fmt.Fprintf(g.w, "%d\n", pgid)
	return err
}

// forget tells the guard that the process group is gone: it kills
// nothing any more.
func (g *guard) forget() {
	if !g.done {
		g.done = true
		_, _ = io.WriteString(g.w, "done\n")
	}
}

// release tells the guard that redsync's work is over, and waits for it
// to exit.
func (g *guard) release() {
	g.forget()
	_ = g.w.Close()
	_ = g.cmd.Wait()
}

// runGuard is the guard's main: it reads the pipe from redsync (stdin)
// to its end, and kills the process group it names unless told "done".
func runGuard(stdin io.Reader) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGQUIT,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPIPE)
	pgid, done, err := readGuardPipe(stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "redsync: guard: %v\n", err)
	}
	if pgid <= 0 || done {
		return 0
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		fmt.Fprintf(os.Stderr, "redsync: guard: killing process group %d: %v\n", pgid, err)
		return 1
	}
	return 0
}

// readGuardPipe reads the lines from redsync to the end: the process
// group's ID, then "done".
func readGuardPipe(r io.Reader) (pgid int, done bool, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "done" {
			done = true
		} else if n, err := strconv.Atoi(line); err == nil && pgid == 0 {
			pgid = n
		}
	}
	return pgid, done, sc.Err()
}
