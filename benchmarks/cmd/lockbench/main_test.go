package main

import (
	"testing"
	"time"
)

// TestRun runs every library briefly, at one node and at two, so that
// go test exercises the workload and the CPU readings for real.
func TestRun(t *testing.T) {
	var names []string
	for _, l := range libraries {
		names = append(names, l.name)
	}
	for _, nodes := range []int{1, 2} {
		cfg := config{workload: "par", duration: 50 * time.Millisecond, warmup: 50 * time.Millisecond, goroutines: 4, nodes: nodes, rounds: 2}
		if err := run(cfg, names, []string{"redsyncv4"}); err != nil {
			t.Errorf("run(nodes=%d) = %v, want nil", nodes, err)
		}
	}
}
