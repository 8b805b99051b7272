package redsync

import (
	"bytes"
	"context"
	"maps"
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
	n := newNodes(pools)
	// Workers of their own: the counts below see no other test's.
	n.workers = &workers{linger: workerLinger}
	return fakes, n
}

var servedCall = redis.NewScriptCall(acquireScript, "key", "value", "1000")

// parked returns how many workers of ws wait for a job.
func (ws *workers) parked() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.idle)
}

// TestWorkersServeNextRounds: the goroutines that served a round's
// commands serve the next rounds', rather than new ones (whose stacks would
// have to grow again): five rounds of three commands, one after the other,
// run on at most three goroutines (fifteen with a goroutine per command).
func TestWorkersServeNextRounds(t *testing.T) {
	fakes, n := servedNodes(3)
	seen := map[int]bool{}
	for round := range 5 {
		if tl := n.broadcast(context.Background(), time.Second, false, nodeOp{call: &servedCall}); tl.done != 3 {
			t.Fatalf("round %d: %d of 3 nodes done", round, tl.done)
		}
		for _, f := range fakes {
			for id := range f.served() {
				seen[id] = true
			}
		}
		// Every worker parks again before the next round starts.
		eventually(t, "the round's workers parked", func() bool { return n.workers.parked() == len(seen) })
	}
	if len(seen) > 3 {
		t.Errorf("five rounds of three commands ran on %d goroutines; want at most 3", len(seen))
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

// TestWorkersSharedByRedsyncs: the workers of one Redsync's rounds serve
// another's (all Redsyncs share allWorkers), so a process that makes a
// Redsync per call does not keep a set of workers per Redsync.
func TestWorkersSharedByRedsyncs(t *testing.T) {
	fakesA, a := servedNodes(3)
	fakesB, b := servedNodes(3)
	shared := &workers{linger: workerLinger}
	a.workers, b.workers = shared, shared
	if newNodes(nil).workers != &allWorkers {
		t.Fatal("a new nodes does not use allWorkers")
	}
	if tl := a.broadcast(context.Background(), time.Second, false, nodeOp{call: &servedCall}); tl.done != 3 {
		t.Fatalf("%d of 3 nodes done", tl.done)
	}
	first := map[int]bool{}
	for _, f := range fakesA {
		for id := range f.served() {
			first[id] = true
		}
	}
	eventually(t, "the workers parked", func() bool { return shared.parked() == len(first) })
	if tl := b.broadcast(context.Background(), time.Second, false, nodeOp{call: &servedCall}); tl.done != 3 {
		t.Fatalf("other nodes: %d of 3 nodes done", tl.done)
	}
	// The other nodes' three commands went to the parked workers first:
	// together the two rounds ran on at most three goroutines.
	reused, all := 0, maps.Clone(first)
	for _, f := range fakesB {
		for id := range f.served() {
			if first[id] {
				reused++
			}
			all[id] = true
		}
	}
	if reused == 0 || len(all) > 3 {
		t.Errorf("the other nodes' round reused %d of the %d parked workers, and the two rounds ran on %d goroutines; want at least one reused and at most 3 in all", reused, len(first), len(all))
	}
}
