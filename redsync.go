package redsync

import (
	"strconv"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Redsync makes distributed mutexes over a set of independent Redis nodes,
// one [redis.Pool] per node. It is safe for concurrent use.
//
// While some Lock of its mutexes waits for a lock held elsewhere, a Redsync
// keeps one listening connection (and one goroutine) per node whose pool
// implements [redis.Subscriber], shared by all its mutexes, to learn of
// releases; it closes them when no Lock waits any more. So share one
// Redsync per process rather than making one per lock.
type Redsync struct {
	nodes  *nodes    // the nodes, shared by the mutexes
	notify *notifier // release notifications (handoff.go); nil when the pools cannot subscribe

	observer observerSlot // the default Observer of its mutexes (hooks.go)
	fences   fenceHints   // WithFencing: the highest counter seen per lock name (fencing.go)
}

// New returns a Redsync over the given pools, one per independent Redis
// master. A lock is held when a majority of them (len(pools)/2 + 1) granted
// it. Problems with the pools (none, or a nil one) are reported by the
// methods of the mutexes made from it.
func New(pools ...redis.Pool) *Redsync {
	r := &Redsync{nodes: newNodes(pools)}
	r.notify = newNotifier(r.nodes.pools)
	return r
}

// NewMutex returns a mutex for the lock called name (the Redis key), set up
// with the given options. It never fails: a bad configuration is returned
// as an error, matching [ErrInvalidConfig], by every method that would send
// a command.
func (r *Redsync) NewMutex(name string, options ...Option) *Mutex {
	m := &Mutex{
		config: config{
			name:          name,
			expiry:        DefaultExpiry,
			tries:         DefaultTries,
			delayFunc:     defaultDelay,
			genValueFunc:  genValue,
			driftFactor:   DefaultDriftFactor,
			timeoutFactor: DefaultTimeoutFactor,
			observer:      r.defaultObserver(),
		},
		nodes:  r.nodes,
		notify: r.notify,
		now:    time.Now,
		acq:    &acquisition{},
	}
	m.building = &m.config
	for _, o := range options {
		if o != nil {
			o.Apply(m)
		}
	}
	m.building = nil
	if m.notify != nil {
		m.notify.keepFor(m.nodeTimeout())
	}
	m.fence.hints = &r.fences
	m.configErr = m.validate()
	if m.configErr == nil {
		if m.shuffle {
			// After validate, whose errors name pools by their index in
			// New's list.
			m.nodes = m.nodes.shuffled()
		}
		m.keyArg = m.name
		m.keyArgs = []any{m.name}
		m.queueKeyArg = queueKey(m.name)
		if m.fence.on {
			m.fence.counters = []any{fenceCounter(m.name)}
		}
		m.ttlArg = strconv.FormatInt(m.expiry.Milliseconds(), 10)
		if m.initValue != "" {
			m.acq = &acquisition{state: acqGiven, value: m.initValue, calls: m.makeCalls(m.initValue)}
		}
	}
	return m
}
