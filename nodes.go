package redsync

import (
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/go-redlock/redsync/redis"
)

// nodes are the independent Redis nodes of a Redsync, one pool each, with
// what each pool can do besides redis.Pool (detected once, by New), the
// quorum, and the recycled rounds that send a command to every node
// (quorum.go). A nodes is read-only after newNodes, and shared by every
// primitive of the Redsync.
type nodes struct {
	pools  []redis.Pool
	quorum int // len(pools)/2 + 1

	runners []redis.ScriptRunner // runners[i] is pools[i] as a ScriptRunner, or nil
	inline  bool                 // one node, whose pool keeps deadlines: no goroutine per command
	// pipeliners[i] is pools[i] as a redis.Pipeliner when every pool is
	// one (and there are several), else nil.
	pipeliners []redis.Pipeliner
	rounds     *sync.Pool // of *round
}

// newNodes returns the nodes of pools. A nil pool is no error here: the
// primitives report it (see check).
func newNodes(pools []redis.Pool) *nodes {
	n := &nodes{
		pools:   slices.Clone(pools),
		quorum:  len(pools)/2 + 1,
		runners: make([]redis.ScriptRunner, len(pools)),
		rounds:  new(sync.Pool),
	}
	for i, p := range n.pools {
		n.runners[i], _ = p.(redis.ScriptRunner)
	}
	if len(n.pools) == 1 {
		k, ok := n.pools[0].(redis.DeadlineKeeper)
		n.inline = ok && k.KeepsDeadlines()
	} else {
		n.pipeliners = make([]redis.Pipeliner, len(n.pools))
		for i, p := range n.pools {
			var ok bool
			if n.pipeliners[i], ok = p.(redis.Pipeliner); !ok {
				n.pipeliners = nil
				break
			}
		}
	}
	return n
}

// shuffled returns the same nodes in a random order (WithShufflePools).
func (n *nodes) shuffled() *nodes {
	s := *n
	s.pools, s.runners = slices.Clone(n.pools), slices.Clone(n.runners)
	if n.pipeliners != nil {
		s.pipeliners = slices.Clone(n.pipeliners)
	}
	rand.Shuffle(len(s.pools), func(i, j int) {
		s.pools[i], s.pools[j] = s.pools[j], s.pools[i]
		s.runners[i], s.runners[j] = s.runners[j], s.runners[i]
		if s.pipeliners != nil {
			s.pipeliners[i], s.pipeliners[j] = s.pipeliners[j], s.pipeliners[i]
		}
	})
	return &s
}

// check returns the configuration problem of the nodes, or nil.
func (n *nodes) check() error {
	if len(n.pools) == 0 {
		return newConfigError("no Redis pools: pass at least one pool to redsync.New")
	}
	for i, p := range n.pools {
		if p == nil {
			return newConfigError("pool #%d is nil", i)
		}
	}
	return nil
}
