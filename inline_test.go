package redsync

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// deadlineNode is a pool that runs every script at once with reply 1, or,
// when block is set, until its context ends. It reports whether it keeps
// deadlines as told, and records whether its last command ran within
// runInline (on the caller's goroutine).
type deadlineNode struct {
	keeps  bool
	block  bool
	inline atomic.Bool

	mu   sync.Mutex
	left []time.Duration // for each blocked command, the time left to its deadline when it came
}

func (n *deadlineNode) Get(context.Context) (redis.Conn, error) { return nil, errUnsupported }
func (n *deadlineNode) KeepsDeadlines() bool                    { return n.keeps }

func (n *deadlineNode) RunScript(ctx context.Context, _ *redis.ScriptCall) (any, error) {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	inline := false
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, ".runInline") {
			inline = true
		}
		if !more {
			break
		}
	}
	n.inline.Store(inline)
	if n.block {
		if deadline, ok := ctx.Deadline(); ok {
			n.mu.Lock()
			n.left = append(n.left, time.Until(deadline))
			n.mu.Unlock()
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return int64(1), nil
}

func TestInlineOnlyForOneNodeThatKeepsDeadlines(t *testing.T) {
	for _, tc := range []struct {
		nodes  int
		keeps  bool
		inline bool
	}{{1, true, true}, {1, false, false}, {3, true, false}} {
		var pools []redis.Pool
		var nodes []*deadlineNode
		for range tc.nodes {
			n := &deadlineNode{keeps: tc.keeps}
			nodes = append(nodes, n)
			pools = append(pools, n)
		}
		m := New(pools...).NewMutex("k")
		if err := m.Lock(); err != nil {
			t.Fatalf("%d nodes, keeps deadlines %v: Lock() = %v", tc.nodes, tc.keeps, err)
		}
		if got := nodes[0].inline.Load(); got != tc.inline {
			t.Errorf("%d nodes, keeps deadlines %v: ran on the caller's goroutine = %v, want %v", tc.nodes, tc.keeps, got, tc.inline)
		}
		if ok, err := m.Unlock(); !ok || err != nil {
			t.Errorf("Unlock() = %v, %v", ok, err)
		}
	}
}

func TestInlineTimeout(t *testing.T) {
	n := &deadlineNode{keeps: true, block: true}
	const timeout = 50 * time.Millisecond
	m := New(n).NewMutex("k", WithExpiry(time.Second), WithTries(1)) // per-node timeout 50ms
	err := m.Lock()
	if err == nil || !strings.Contains(err.Error(), "no reply within the per-node timeout of 50ms") {
		t.Fatalf("Lock() on a node that never answers = %v, want the per-node timeout named", err)
	}
	if !n.inline.Load() {
		t.Error("the command did not run on the caller's goroutine")
	}
	// The try and its undo, each bounded by 50ms: a deadline set when the
	// command was sent is at most 50ms away when it arrives. (How long
	// Lock took depends on the machine's load, and is not checked.)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.left) != 2 {
		t.Errorf("%d commands with a deadline, want 2 (the try and its undo)", len(n.left))
	}
	for i, left := range n.left {
		if left > timeout {
			t.Errorf("command %d came %v before its deadline, want at most the per-node timeout of %v", i, left, timeout)
		}
	}
}
