package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process mode (-procs N): each competitor is an OS process of its own,
// the handoff binary run again with workerEnv set, with one goroutine and
// one client of the library (for redlock, a Redsync of its own: no local
// hand-off, waiters woken by the nodes). The parent starts the N
// processes, waits until each has connected and taken the lock once, then
// tells them all when to start; each runs the workload for the duration
// and writes its counts and waits as one JSON line.

// workerEnv, when set, makes the process a worker: it holds the worker's
// job as JSON.
const workerEnv = "HANDOFF_WORKER"

// job is what a worker process runs.
type job struct {
	Lib   string        `json:"lib"`
	Addrs []string      `json:"addrs"`
	Key   string        `json:"key"`
	Hold  time.Duration `json:"hold"`
	Work  time.Duration `json:"work"`
	Span  time.Duration `json:"span"` // how long to run, from the start the parent sends
}

// report is a worker's result.
type report struct {
	Acquisitions int             `json:"acquisitions"`
	Waits        []time.Duration `json:"waits"`
	Failed       int             `json:"failed"`        // Lock calls that failed before the end
	UnlockFailed int             `json:"unlock_failed"` // Unlock calls that failed
	FirstError   string          `json:"first_error,omitempty"`
	CPU          time.Duration   `json:"cpu"` // the process's user and system time while it ran the workload
}

// processCPU returns the user and system time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// workerMain runs the worker job of $HANDOFF_WORKER; ok is false when the
// process is no worker.
func workerMain() (ok bool) {
	env := os.Getenv(workerEnv)
	if env == "" {
		return false
	}
	if err := runWorker(env, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "handoff worker:", err)
		os.Exit(1)
	}
	return true
}

// runWorker connects, takes the lock once, says "ready", waits for the
// start time (Unix nanoseconds on a line of in), runs the workload and
// writes its report.
func runWorker(env string, in io.Reader, out io.Writer) error {
	var j job
	if err := json.Unmarshal([]byte(env), &j); err != nil {
		return err
	}
	i := slices.IndexFunc(libraries, func(l library) bool { return l.name == j.Lib })
	if i < 0 {
		return fmt.Errorf("unknown library %q", j.Lib)
	}
	lockers, closeLib, err := libraries[i].setup(j.Addrs, j.Key, 1)
	if err != nil {
		return err
	}
	defer closeLib()
	l := lockers[0]
	if err := l.lock(context.Background()); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := l.unlock(); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	var startNanos int64
	if _, err := fmt.Fscan(in, &startNanos); err != nil {
		return fmt.Errorf("reading the start: %w", err)
	}
	start := time.Unix(0, startNanos)
	time.Sleep(time.Until(start))
	end := start.Add(j.Span)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var r report
	cpu := processCPU()
	for ctx.Err() == nil {
		t0 := time.Now()
		if err := l.lock(ctx); err != nil {
			if ctx.Err() == nil {
				r.Failed++
				if r.FirstError == "" {
					r.FirstError = err.Error()
				}
			}
			continue
		}
		granted := time.Now()
		if granted.Before(end) {
			r.Acquisitions++
			r.Waits = append(r.Waits, granted.Sub(t0))
		}
		time.Sleep(j.Hold)
		if err := l.unlock(); err != nil {
			r.UnlockFailed++
		}
		time.Sleep(j.Work)
	}
	r.CPU = processCPU() - cpu
	return json.NewEncoder(out).Encode(r)
}

// measureProcs runs the workload with lib in cfg.procs worker processes.
func measureProcs(cfg config, lib library, addrs []string) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	j := job{Lib: lib.name, Addrs: addrs, Key: "handoff:procs:" + lib.name, Hold: cfg.hold, Work: cfg.work, Span: cfg.duration}
	spec, err := json.Marshal(j)
	if err != nil {
		return result{}, err
	}
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines *bufio.Scanner
	}
	procs := make([]*proc, cfg.procs)
	defer func() {
		for _, p := range procs {
			if p != nil && p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
			}
		}
	}()
	for i := range procs {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), workerEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return result{}, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return result{}, err
		}
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		lines := bufio.NewScanner(stdout)
		lines.Buffer(make([]byte, 1<<20), 64<<20)
		procs[i] = &proc{cmd: cmd, stdin: stdin, lines: lines}
	}
	for i, p := range procs {
		if !p.lines.Scan() || p.lines.Text() != "ready" {
			return result{}, fmt.Errorf("worker %d did not get ready: %v", i, p.lines.Err())
		}
	}
	// Every worker starts at the same instant, a little after the last
	// one was told.
	start := time.Now().Add(100 * time.Millisecond)
	for _, p := range procs {
		if _, err := fmt.Fprintln(p.stdin, start.UnixNano()); err != nil {
			return result{}, err
		}
	}
	reports := make([]report, len(procs))
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !p.lines.Scan() {
				errs[i] = fmt.Errorf("worker %d wrote no report: %v", i, p.lines.Err())
				return
			}
			errs[i] = json.Unmarshal(p.lines.Bytes(), &reports[i])
		}()
	}
	wg.Wait()
	for _, p := range procs {
		_ = p.stdin.Close()
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	counts := make([]int, len(reports))
	waits := make([][]time.Duration, len(reports))
	var res result
	var firstErrors []string
	for i, r := range reports {
		res.clientCPU += r.CPU
		counts[i], waits[i] = r.Acquisitions, r.Waits
		res.failed += r.Failed
		res.unlockFailed += r.UnlockFailed
		if r.FirstError != "" {
			firstErrors = append(firstErrors, r.FirstError)
		}
	}
	if len(firstErrors) > 0 {
		fmt.Fprintf(os.Stderr, "%s: failed Lock calls, first errors: %s\n", lib.name, strings.Join(firstErrors, "; "))
	}
	return summarizeRun(counts, waits, res), nil
}
