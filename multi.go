package redsync

import (
	"slices"
	"strings"

	"github.com/go-redlock/redsync/redis"
)

// NewMultiMutex returns a mutex that locks all the given names (Redis
// keys) at once: on each node, one script takes every name or none, and
// the lock is held when a quorum of nodes took all of them. Unlock,
// Extend, Valid, Context, [WithAutoExtend] and the other options act on
// the whole set, as [Redsync.NewMutex] does on one name. Two multi-key
// mutexes whose sets share a name exclude each other, and a Mutex of one
// of the names excludes both.
//
// Like NewMutex, it never fails: a bad configuration is returned as an
// error matching [ErrInvalidConfig] by every method that would send a
// command, and then nothing is sent. That is so for no names, an empty or
// a repeated name, and, when a node's pool is a Redis Cluster client (see
// [redis.Clustered]), names that do not share a hash slot (give them a
// common hash tag, as in "{order:42}:stock" and "{order:42}:payment").
//
// With [WithFencing], an acquisition of the set gets one token, greater
// than the tokens of every earlier holder of any of its names (each name
// keeps its counter; the set's token raises all of them). With
// [WithRestartGuard], a node votes for the set as for one name.
//
// A Lock that has to wait for a multi-key lock polls, with the retry delay
// (see [WithRetryDelay]); it takes no part in release notification and
// local hand-off. Its Unlock wakes, for every name it frees, the first
// Lock call queued for that name.
//
// With one name, NewMultiMutex is NewMutex. Name returns the names joined
// by commas.
func (r *Redsync) NewMultiMutex(names []string, options ...Option) *Mutex {
	if len(names) == 1 {
		return r.NewMutex(names[0], options...)
	}
	m := r.NewMutex(strings.Join(names, ","), options...)
	m.names = slices.Clone(names)
	if err := checkNames(names); err != nil {
		m.configErr = err
	}
	if m.configErr == nil {
		m.configErr = checkSlots(r.nodes.pools, names)
	}
	if m.configErr == nil {
		m.keyArgs = make([]any, len(names))
		m.fence.counters = nil
		for i, name := range names {
			m.keyArgs[i] = name
			if m.fence.on {
				m.fence.counters = append(m.fence.counters, fenceCounter(name))
			}
		}
		// The restart guard's marker hashes to the names' slot (they
		// share one on a cluster).
		m.guard.marker = guardMarker(names[0])
		if m.acq.state == acqGiven {
			m.acq.calls = m.makeCalls(m.acq.value)
		}
	}
	return m
}

// checkNames returns the problem of the names given to NewMultiMutex, or
// nil.
func checkNames(names []string) error {
	if len(names) == 0 {
		return newConfigError("no names: pass at least one name to NewMultiMutex")
	}
	for i, name := range names {
		if name == "" {
			return newConfigError("name #%d is empty", i)
		}
		if j := slices.Index(names[:i], name); j >= 0 {
			return newConfigError("name %q is given twice (#%d and #%d)", name, j, i)
		}
	}
	return nil
}

// checkSlots returns an error when one of pools is a Redis Cluster client
// and names are not all in one hash slot: a script on several keys would
// get CROSSSLOT there.
func checkSlots(pools []redis.Pool, names []string) error {
	for i, p := range pools {
		if c, ok := p.(redis.Clustered); !ok || !c.Clustered() {
			continue
		}
		slot := keySlot(names[0])
		for _, name := range names[1:] {
			if s := keySlot(name); s != slot {
				return newConfigError("pool #%d is a Redis Cluster client, and names %q (slot %d) and %q (slot %d) are in different hash slots: give the names a common hash tag, as in {order:42}:stock and {order:42}:payment",
					i, names[0], slot, name, s)
			}
		}
	}
	return nil
}

// multiHolds is Valid's check of one node for a multi-key Mutex: done when
// every name holds value, taken when one holds another value, else missing.
func (m *Mutex) multiHolds(conn redis.Conn, value string) (int64, error) {
	reply := replyDone
	for _, name := range m.names {
		got, err := conn.Get(name)
		switch {
		case err != nil:
			return 0, err
		case got == "":
			reply = replyMissing
		case got != value:
			return replyTaken, nil
		}
	}
	return reply, nil
}
