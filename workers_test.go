package redsync

import (
	"bytes"
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// goroutineID returns the id of the calling goroutine, from the first line
// of its stack ("goroutine 42 [running]:").
func goroutineID() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf, _ = bytes.CutPrefix(buf, []byte("goroutine "))
	id, _ := strconv.Atoi(string(buf[:bytes.IndexByte(buf, ' ')]))
	return id
}

// servedNode is a pool whose scripts reply 1 at once and record the
// goroutine that ran them; while hold is not nil, the first command waits
// for it to close.
type servedNode struct {
	mu   sync.Mutex
	ids  map[int]bool
	hold chan struct{}
	held atomic.Bool
}

func (n *servedNode) Get(context.Context) (redis.Conn, error) { return nil, errUnsupported }

func (n *servedNode) RunScript(context.Context, *redis.ScriptCall) (any, error) {
	n.mu.Lock()
	if n.ids == nil {
		n.ids = map[int]bool{}
	}
	n.ids[goroutineID()] = true
	hold := n.hold
	n.mu.Unlock()
	if hold != nil && n.held.CompareAndSwap(false, true) {
		<-hold
	}
	return int64(1), nil
}

// served returns the goroutines that ran n's commands, and forgets them.
func (n *servedNode) served() map[int]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := n.ids
	n.ids = nil
	return ids
}

func servedNodes(count int) ([]*servedNode, *nodes) {
	fakes := make([]*servedNode, count)
	pools := make([]redis.Pool, count)
	for i := range fakes {
		fakes[i] = &servedNode{}
		pools[i] = fakes[i]
	}
	return fakes, newNodes(pools)
}

var servedCall = redis.NewScriptCall(acquireScript, "key", "value", "1000")

// parked returns how many workers of ws wait for a job.
func (ws *workers) parked() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.idle)
}

// TestWorkersServeNextRounds: the goroutines that served a round's
// commands serve the next round's, rather than new ones (whose stacks would
// have to grow again).
func TestWorkersServeNextRounds(t *testing.T) {
	fakes, n := servedNodes(3)
	first := map[int]bool{}
	for round := range 5 {
		if tl := n.broadcast(context.Background(), time.Second, false, nodeOp{call: &servedCall}); tl.done != 3 {
			t.Fatalf("round %d: %d of 3 nodes done", round, tl.done)
		}
		for node, f := range fakes {
			for id := range f.served() {
				if round == 0 {
					first[id] = true
				} else if !first[id] {
					t.Errorf("round %d: node %d served by goroutine %d, not one of the first round's %v", round, node, id, first)
				}
			}
		}
		// Every worker parks again before the next round starts.
		eventually(t, "the round's workers parked", func() bool { return n.workers.parked() == len(first) })
	}
	if len(first) == 0 || len(first) > 3 {
		t.Errorf("the first round ran on %d goroutines; want 1 to 3", len(first))
	}
}

// TestWorkersEndWhenIdle: workers end once idle for their linger, and a
// round after that starts new ones.
func TestWorkersEndWhenIdle(t *testing.T) {
	fakes, n := servedNodes(3)
	n.workers.linger = 20 * time.Millisecond
	before := runtime.NumGoroutine()
	if tl := n.broadcast(context.Background(), time.Second, false, nodeOp{call: &servedCall}); tl.done != 3 {
		t.Fatalf("%d of 3 nodes done", tl.done)
	}
	first := fakes[0].served()
	eventually(t, "the workers ended", func() bool {
		return n.workers.parked() == 0 && runtime.NumGoroutine() <= before
	})
	if tl := n.broadcast(context.Background(), time.Second, false, nodeOp{call: &servedCall}); tl.done != 3 {
		t.Fatalf("after the linger: %d of 3 nodes done", tl.done)
	}
	for id := range fakes[0].served() {
		if first[id] {
			t.Errorf("goroutine %d served again after it ended", id)
		}
	}
}

// TestWorkersBusyOneNotWaitedFor: a worker still serving a slow node after
// its round returned (at a quorum) is not handed the next round's command;
// the next round completes without it.
func TestWorkersBusyOneNotWaitedFor(t *testing.T) {
	fakes, n := servedNodes(3)
	hold := make(chan struct{})
	fakes[0].hold = hold
	defer close(hold)
	if tl := n.broadcast(context.Background(), time.Second, true, nodeOp{call: &servedCall}); tl.done < n.quorum {
		t.Fatalf("first round: %d nodes done; want a quorum", tl.done)
	}
	for round := range 3 {
		done := make(chan tally, 1)
		go func() { done <- n.broadcast(context.Background(), time.Second, false, nodeOp{call: &servedCall}) }()
		select {
		case tl := <-done:
			if tl.done != 3 {
				t.Errorf("round %d: %d of 3 nodes done", round+2, tl.done)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d waited for the worker held by the first round's slow node", round+2)
		}
	}
}

// TestWorkersLingerRace runs rounds from several goroutines with pauses
// around a very short linger, so that serve often takes a worker just as
// its timer fires: every command is served exactly once, and no worker
// outlives the rounds.
func TestWorkersLingerRace(t *testing.T) {
	_, n := servedNodes(5)
	n.workers.linger = 50 * time.Microsecond
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var bad atomic.Int32
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				if tl := n.broadcast(context.Background(), 10*time.Second, false, nodeOp{call: &servedCall}); tl.done != 5 || tl.replied != 5 {
					bad.Add(1)
				}
				time.Sleep(time.Duration((g*7+i)%5) * 20 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if b := bad.Load(); b > 0 {
		t.Errorf("%d rounds did not get every node's reply once", b)
	}
	eventually(t, "the workers ended", func() bool {
		return n.workers.parked() == 0 && runtime.NumGoroutine() <= before
	})
}
