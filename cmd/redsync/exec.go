//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-redlock/redsync"
)

// Environment variables set for the command.
const (
	envName    = "REDSYNC_LOCK_NAME"
	envValue   = "REDSYNC_LOCK_VALUE"
	envFencing = "REDSYNC_FENCING_TOKEN"
	envPermit  = "REDSYNC_PERMIT"
)

// envVars are the variables that exec sets for COMMAND; inherited ones
// are removed.
var envVars = []string{envName, envValue, envFencing, envPermit}

// forwarded are the signals that redsync passes on to the command. While
// it waits for the lock, they end the wait.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// jobControl are the signals of job control that redsync passes on to the
// command (see supervisor.jobControl).
var jobControl = []os.Signal{syscall.SIGTSTP, syscall.SIGCONT}

// messageDrain bounds how long redsync waits, when it exits, for its
// messages to reach a standard error that blocks.
const messageDrain = time.Second

// runExec runs "redsync exec".
func runExec(args []string, stdout, stderr io.Writer) int {
	// A standard error whose reader went away must not kill redsync with
	// SIGPIPE (a caught signal, unlike an ignored one, is reset for
	// COMMAND), and one that blocks must not stop it.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	messages := newBackgroundWriter(stderr)
	defer messages.close(messageDrain)
	stderr = messages

	var o options
	flags := o.flagSet("exec")
	pos, err := parseArgs(flags, args)
	if err != nil {
		return flagError(err, stdout, stderr)
	}
	switch {
	case len(pos) == 0:
		return usageError(stderr, "exec: no lock NAME")
	case pos[0] == "":
		return usageError(stderr, "exec: empty lock NAME")
	}
	name, command := pos[0], pos[1:]
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	if len(command) == 0 {
		return usageError(stderr, "exec: no COMMAND after NAME")
	}
	if err := o.check(flags); err != nil {
		return usageError(stderr, "exec: "+err.Error())
	}
	spec, err := o.nodeSpec()
	if err != nil {
		return usageError(stderr, "exec: "+err.Error())
	}
	// Look the command up before taking the lock: a typo must not hold it.
	path, err := exec.LookPath(command[0])
	if err != nil {
		errorf(stderr, "%s: %v", command[0], lookPathError(err))
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return exitNotFound
		}
		return exitNotExec
	}
	nodes, err := openNodes(spec, o.cacert)
	if err != nil {
		return usageError(stderr, "exec: "+err.Error())
	}
	defer closeNodes(nodes)
	if err := checkServers(nodes, connect(nodes), stderr); err != nil {
		return usageError(stderr, "exec: "+err.Error())
	}

	mutexOpts := []redsync.Option{redsync.WithExpiry(o.ttl), redsync.WithAutoExtend(0)}
	if o.wait > 0 {
		mutexOpts = append(mutexOpts, redsync.WithTries(math.MaxInt32)) // bounded by --wait
	}
	if o.fencing {
		mutexOpts = append(mutexOpts, redsync.WithFencing())
	}
	if o.verbose {
		logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		mutexOpts = append(mutexOpts, redsync.WithObserver(redsync.SlogObserver(logger)))
	}
	rs := redsync.New(pools(nodes)...)
	var t taker = lockTaker{m: rs.NewMutex(name, mutexOpts...), fencing: o.fencing}
	if o.permits > 0 {
		t = permitTaker{s: rs.NewSemaphore(name, o.permits, mutexOpts...)}
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	h, code := acquire(t, &o, nodes, sigs, stderr)
	if h == nil {
		return code
	}
	code = runHolding(h, path, command, &o, sigs, stderr)

	ctx, cancel := context.WithTimeout(context.Background(), o.ttl)
	defer cancel()
	if _, err := h.release(ctx); err != nil && code != exitLost {
		errorf(stderr, "releasing %s: %s (it expires on the nodes within %v)", h, plain(err), o.ttl)
	}
	return code
}

// lookPathError shortens the error of exec.LookPath, which repeats the
// command's name.
func lookPathError(err error) error {
	if errors.Is(err, exec.ErrNotFound) {
		return errors.New("command not found")
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// acquire takes the lock (or a permit), waiting up to --wait, and gives
// up when one of the forwarded signals arrives. It returns the exit status
// when it was not taken.
func acquire(t taker, o *options, nodes []node, sigs <-chan os.Signal, stderr io.Writer) (hold, int) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if o.wait > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, o.wait)
		defer stop()
	}
	type result struct {
		h   hold
		err error
	}
	done := make(chan result, 1)
	go func() {
		h, err := t.take(ctx, o.wait > 0)
		done <- result{h, err}
	}()
	var r result
	select {
	case r = <-done:
	case sig := <-sigs:
		cancel(signalError{sig.(syscall.Signal)})
		if r = <-done; r.err == nil {
			// Taken as the signal came: let it go at once.
			_, _ = r.h.release(context.Background())
		}
		return nil, 128 + int(sig.(syscall.Signal))
	}
	if r.err == nil {
		return r.h, 0
	}

	switch err, failed := r.err, nodeErrors(r.err); {
	case errors.Is(err, redsync.ErrInvalidConfig):
		return nil, usageError(stderr, "exec: "+plain(err))
	case len(failed) > len(nodes)-(len(nodes)/2+1):
		errorf(stderr, "%s not obtained: %d of %d nodes failed (a quorum needs %d):", t, len(failed), len(nodes), len(nodes)/2+1)
		for _, i := range slices.Sorted(mapKeys(failed)) {
			fmt.Fprintf(stderr, "  %s: %s\n", nodes[i].label, plain(failed[i]))
		}
		return nil, exitUnavailable
	}
	if !o.quiet {
		within := "at once"
		if o.wait > 0 {
			within = "within " + o.wait.String()
		}
		errorf(stderr, "%s; not obtained %s", t.heldElsewhere(), within)
	}
	return nil, exitNotObtained
}

// runHolding runs the command while h is held and returns the exit
// status: the command's, or exitLost when h ended before all of the
// command's processes were gone.
func runHolding(h hold, path string, command []string, o *options, sigs <-chan os.Signal, stderr io.Writer) int {
	if err := adoptOrphans(); err != nil {
		errorf(stderr, "becoming the subreaper of %s: %v; %s not started", command[0], err, command[0])
		return exitSoftware
	}
	g, err := startGuard()
	if err != nil {
		errorf(stderr, "starting the guard process: %v; %s not started", err, command[0])
		return exitSoftware
	}
	defer g.release()

	ctl, chld := make(chan os.Signal, 8), make(chan os.Signal, 1)
	signal.Notify(ctl, jobControl...)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(ctl)
	defer signal.Stop(chld)

	held := h.Context()
	if lockEnded(held) {
		// The validity ran out before the command could start.
		errorf(stderr, "%s; %s not started", plain(lossCause(held)), command[0])
		return exitLost
	}
	j, err := startJob(commandOf(h, path, command), g.pid())
	if err != nil {
		errorf(stderr, "%s: %v", command[0], err)
		return exitNotExec
	}
	if err := g.watch(j.pgid); err != nil {
		errorf(stderr, "the guard process failed (%v): if redsync is killed, what %s runs in the background survives", err, command[0])
	}
	j.onGroupGone = g.forget
	// With "stty tostop", a write to the terminal from a background job
	// stops the job's process group, redsync's, but not COMMAND's: redsync
	// would stop extending and stopping the job it supervises. Its own
	// messages go to the terminal instead. Ignored only now, since an
	// ignored signal stays ignored in the processes that redsync starts.
	signal.Ignore(syscall.SIGTTOU)
	s := &supervisor{
		job: j, held: held, grace: o.grace, margin: o.ttl / 20, name: command[0], stderr: stderr,
		sigs: sigs, ctl: ctl, chld: chld,
	}
	return s.run()
}

// commandOf is the command to run: COMMAND with redsync's standard input
// and outputs, and its environment with the variables of h.
func commandOf(h hold, path string, command []string) *exec.Cmd {
	cmd := exec.Command(path, command[1:]...)
	cmd.Args[0] = command[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = childEnv(h)
	return cmd
}

// exitStatus is the exit status of the command as a shell reports it:
// 128+N when signal N killed it.
func exitStatus(cmd *exec.Cmd, err error) int {
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	if err != nil {
		return exitSoftware
	}
	return cmd.ProcessState.ExitCode()
}

// childEnv is redsync's environment for the command, with the variables
// of h (and without inherited ones that do not apply).
func childEnv(h hold) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(envVars, name)
	})
	return append(env, h.env()...)
}

// plain returns the text of err on one line, without the library's
// "redsync: " prefixes, which the command's own prefix makes redundant.
func plain(err error) string {
	s := strings.ReplaceAll(err.Error(), "redsync: ", "")
	return strings.ReplaceAll(s, "\n", "; ")
}

// signalError is the cause of a wait for the lock cut short by a signal.
type signalError struct {
	sig syscall.Signal
}

func (e signalError) Error() string {
	return "interrupted by " + e.sig.String()
}

// nodeErrors returns the node errors (*redsync.RedisError) found anywhere
// in err, by node index.
func nodeErrors(err error) map[int]error {
	found := map[int]error{}
	var walk func(error)
	walk = func(err error) {
		if re, ok := err.(*redsync.RedisError); ok {
			if _, dup := found[re.Node]; !dup {
				found[re.Node] = re.Err
			}
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if next := u.Unwrap(); next != nil {
				walk(next)
			}
		case interface{ Unwrap() []error }:
			for _, next := range u.Unwrap() {
				walk(next)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return found
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
