package redsync

import (
	"context"
	"runtime"
	"strings"
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
	m := New(n).NewMutex("k", WithExpiry(time.Second), WithTries(1)) // per-node timeout 50ms
	start := time.Now()
	err := m.Lock()
	if err == nil || !strings.Contains(err.Error(), "no reply within the per-node timeout of 50ms") {
		t.Fatalf("Lock() on a node that never answers = %v, want the per-node timeout named", err)
	}
	if !n.inline.Load() {
		t.Error("the command did not run on the caller's goroutine")
	}
	// The try and its undo, each bounded by 50ms.
	if took := time.Since(start); took > time.Second {
		t.Errorf("Lock() took %v", took)
	}
}
