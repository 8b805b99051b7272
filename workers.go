package redsync

import (
	"slices"
	"sync"
	"time"
)

// Workers.
//
// broadcast runs each node's command of a round on a goroutine of its own
// (quorum.go), so that one slow node delays no other. A fresh goroutine
// starts on a small stack, and a driver's call (go-redis's, most of all)
// runs deep enough to make the runtime grow that stack, copying it, on
// every command: about a tenth of the client's CPU time in an uncontended
// Lock+Unlock. So a goroutine that has served a command stays for
// workerLinger, parked, and serves the next command of any round of the
// same nodes on the stack it already grew. Workers end once idle for that
// long: a process that stops locking keeps none, and no goroutine of the
// library outlives its calls by more than that. The workers serve every
// Redsync of the process (allWorkers): a process that makes a Redsync per
// call keeps no more of them than one that shares a Redsync.
//
// A worker serves one command at a time and knows nothing of the round it
// serves beyond the job: the round's bookkeeping (results, references,
// settled) is the same whether a worker or a new goroutine serves it.

// workerLinger is how long a worker waits for its next command before it
// ends.
const workerLinger = 100 * time.Millisecond

// allWorkers serve the rounds of every nodes.
var allWorkers = workers{linger: workerLinger}

// workers are parked workers, most recently parked last: the next command
// goes to the one whose stack is the warmest.
type workers struct {
	linger time.Duration // workerLinger; tests shorten it
	mu     sync.Mutex
	idle   []*worker
}

// worker is a parked goroutine of workers; next hands it its next job.
type worker struct {
	next chan job
}

// job is one node's command of a round.
type job struct {
	r    *round
	node int
}

// serve runs j on a parked worker, or on a new goroutine that becomes one.
func (ws *workers) serve(j job) {
	ws.mu.Lock()
	if k := len(ws.idle); k > 0 {
		w := ws.idle[k-1]
		ws.idle = ws.idle[:k-1]
		ws.mu.Unlock()
		w.next <- j // buffered, and empty while the worker was idle
		return
	}
	ws.mu.Unlock()
	go ws.work(j)
}

// work serves j, then parks and serves the jobs it is handed, until it has
// waited ws.linger for one.
func (ws *workers) work(j job) {
	w := &worker{next: make(chan job, 1)}
	linger := time.NewTimer(ws.linger)
	defer linger.Stop()
	for {
		j.r.serve(j.node)
		ws.mu.Lock()
		ws.idle = append(ws.idle, w)
		ws.mu.Unlock()
		// The timer is still running when the last job came before it
		// fired: Reset moves it forward.
		linger.Reset(ws.linger)
		select {
		case j = <-w.next:
			continue
		case <-linger.C:
		}
		ws.mu.Lock()
		i := slices.Index(ws.idle, w)
		if i >= 0 {
			ws.idle = slices.Delete(ws.idle, i, i+1)
		}
		ws.mu.Unlock()
		if i >= 0 {
			return
		}
		// serve took w just as the timer fired: its job is on the way.
		j = <-w.next
	}
}
