//go:build !linux

package redistest

import "os/exec"

// startCmd starts cmd. Outside Linux there is no parent-death signal, so a
// test binary that exits without running its cleanups can leave a
// redis-server behind.
func startCmd(cmd *exec.Cmd) error {
	return cmd.Start()
}
