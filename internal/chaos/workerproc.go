package chaos

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A WorkerProc is a worker running in a process of its own: the test
// binary, re-executed with $REDSYNC_CHAOS_WORKER set, so that it can be
// paused with SIGSTOP like any process.
type WorkerProc struct {
	Config    WorkerConfig
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
	terminate sync.Once
}

// StartWorker starts bin as the worker configured by cfg; its standard
// error goes to stderr. bin must call [WorkerMain] first thing (from
// TestMain).
func StartWorker(bin string, cfg WorkerConfig, stderr io.Writer) (*WorkerProc, error) {
	env, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), WorkerEnv+"="+string(env), raceOptions())
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &WorkerProc{Config: cfg, cmd: cmd, done: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

// raceOptions returns $GORACE for a worker: the caller's options, and no
// pause at exit. A binary built with -race otherwise sleeps a second before
// it exits, and every row waits for its workers to exit.
func raceOptions() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// Pid returns the worker's process id.
func (w *WorkerProc) Pid() int { return w.cmd.Process.Pid }

// Pause freezes the worker with SIGSTOP.
func (w *WorkerProc) Pause() error { return w.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused worker with SIGCONT.
func (w *WorkerProc) Resume() error { return w.cmd.Process.Signal(syscall.SIGCONT) }

// Terminate asks the worker to finish: SIGCONT, then SIGTERM. Only the
// first call signals: a second SIGTERM could reach the worker after it
// restored the default action on its way out, and kill it.
func (w *WorkerProc) Terminate() {
	w.terminate.Do(func() {
		w.cmd.Process.Signal(syscall.SIGCONT)
		w.cmd.Process.Signal(syscall.SIGTERM)
	})
}

// Stop asks the worker to finish (see Terminate) and waits for it; after
// timeout it kills it. It returns the worker's exit error.
func (w *WorkerProc) Stop(timeout time.Duration) error {
	w.Terminate()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
		return w.err
	case <-t.C:
		w.cmd.Process.Kill()
		<-w.done
		return errors.Join(errors.New("chaos: worker did not stop in time; killed"), w.err)
	}
}
