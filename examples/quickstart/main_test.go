package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-redlock/redsync/internal/redistest"
)

// TestRun runs the demo on nodes it starts itself and checks that it kills
// one node, reports no violation, and leaves no redis-server behind.
func TestRun(t *testing.T) {
	var (
		servers []*redistest.Server
		pids    []int
	)
	cfg := config{
		workers: 3,
		rounds:  3,
		hold:    100 * time.Millisecond,
		started: func(s []*redistest.Server) {
			servers = s
			for _, srv := range s {
				pids = append(pids, srv.Pid())
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out bytes.Buffer
	start := time.Now()
	err := run(ctx, &out, cfg)
	elapsed := time.Since(start)
	t.Logf("run took %v; its output:\n%s", elapsed, out.String())
	if err != nil {
		t.Fatalf("run() = %v, want nil", err)
	}

	for _, want := range []string{"killed node", "summary after", "acquisitions: 9,", "violations: 0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "VIOLATION") {
		t.Errorf("the output reports a VIOLATION")
	}

	if len(servers) != nodeCount {
		t.Fatalf("run started %d servers, want %d", len(servers), nodeCount)
	}
	for i, s := range servers {
		if s.Running() || s.Pid() != 0 {
			t.Errorf("server %d (%s): Running() = %v, Pid() = %d after run; want false, 0", i+1, s.Addr(), s.Running(), s.Pid())
		}
		if pids[i] == 0 {
			t.Errorf("server %d (%s) had no process when run started", i+1, s.Addr())
		} else if processAlive(pids[i]) {
			t.Errorf("server %d (%s): process %d is still alive after run", i+1, s.Addr(), pids[i])
		}
	}
}

// TestRunInterrupted cancels the run midway, as Ctrl-C does, and checks that
// run reports the interruption and still stops every node it started.
func TestRunInterrupted(t *testing.T) {
	var servers []*redistest.Server
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config{
		workers: 3,
		rounds:  100,
		hold:    100 * time.Millisecond,
		started: func(s []*redistest.Server) {
			servers = s
			// Counted from when the nodes are up, however long starting
			// them took: the workers are then under way.
			time.AfterFunc(700*time.Millisecond, cancel)
		},
	}

	var out bytes.Buffer
	err := run(ctx, &out, cfg)
	t.Logf("output:\n%s", out.String())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("run() = %v, want an error matching context.Canceled", err)
	}
	if !strings.Contains(out.String(), "violations: 0") {
		t.Errorf("the output lacks the summary's %q", "violations: 0")
	}
	if len(servers) != nodeCount {
		t.Fatalf("run started %d servers, want %d", len(servers), nodeCount)
	}
	for i, s := range servers {
		if s.Running() {
			t.Errorf("server %d (%s) is still running after run", i+1, s.Addr())
		}
	}
}

// processAlive reports whether a process with this pid still exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  config
		ok   bool
	}{
		{"default", config{workers: 4, rounds: 5, hold: 200 * time.Millisecond}, true},
		{"no workers", config{workers: 0, rounds: 5, hold: 200 * time.Millisecond}, false},
		{"no rounds", config{workers: 4, rounds: 0, hold: 200 * time.Millisecond}, false},
		{"no hold", config{workers: 4, rounds: 5, hold: 0}, false},
		{"hold too long", config{workers: 4, rounds: 5, hold: maxHold + time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validate()
			if (err == nil) != tt.ok {
				t.Errorf("validate() = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestParseAddrs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"127.0.0.1:6379", []string{"127.0.0.1:6379"}, true},
		{" a:1, b:2 ,,c:3 ", []string{"a:1", "b:2", "c:3"}, true},
		{"localhost", nil, false},
		{" , ", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseAddrs(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("parseAddrs(%q) error = %v, want ok = %v", tt.in, err, tt.ok)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("parseAddrs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
