//go:build linux

package redistest

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// On Linux every redis-server is started with PR_SET_PDEATHSIG = SIGKILL so
// that it dies together with the test binary even when the binary never runs
// its cleanups (a panic, a -timeout expiry, os.Exit, SIGKILL).
//
// The parent-death signal is tied to the OS thread that forked the child, not
// to the process: if that thread ever exits, the child is killed. Go normally
// keeps its threads alive, but a thread is destroyed when a goroutine locked
// to it returns. To be immune to that, all children are forked from one
// goroutine that locks itself to its thread and never returns, so the thread
// lives exactly as long as the process.

type spawnJob struct {
	cmd *exec.Cmd
	res chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnJob
)

func spawnLoop() {
	runtime.LockOSThread() // never unlocked, see above
	for job := range spawnCh {
		job.res <- job.cmd.Start()
	}
}

// startCmd starts cmd from the dedicated spawning thread.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnJob)
		go spawnLoop()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	res := make(chan error, 1)
	spawnCh <- spawnJob{cmd: cmd, res: res}
	return <-res
}
