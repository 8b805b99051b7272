package redsync

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// nodeFunc runs one command on one node and returns the script's reply
// (replyDone, replyTaken or replyMissing) or an error.
type nodeFunc func(ctx context.Context, node int) (int64, error)

// nodeResult is the outcome of one command on one node.
type nodeResult struct {
	node  int
	reply int64
	err   error
}

// tally counts the outcomes of one command sent to every node.
type tally struct {
	nodes     int     // nodes the command was sent to
	replied   int     // outcomes counted so far
	done      int     // nodes that acquired, released or extended
	missing   int     // nodes where the key did not exist
	taken     []int   // nodes where another owner holds the key
	permanent int     // nodes whose error another try will not cure
	errs      []error // *ErrNodeTaken and *RedisError, in order of arrival
}

func (t *tally) add(r nodeResult) {
	t.replied++
	switch {
	case r.err != nil:
		err, permanent := classifyReplyError(r.err)
		if permanent {
			t.permanent++
		}
		t.errs = append(t.errs, &RedisError{Node: r.node, Err: err})
	case r.reply == replyDone:
		t.done++
	case r.reply == replyMissing:
		t.missing++
	default:
		t.taken = append(t.taken, r.node)
		t.errs = append(t.errs, &ErrNodeTaken{Node: r.node})
	}
}

// decided reports whether the outcome for a quorum q can no longer change:
// a quorum succeeded, or too few nodes are left to reach one.
func (t *tally) decided(q int) bool {
	return t.done >= q || t.done+(t.nodes-t.replied) < q
}

// err joins the node errors; nil when there are none.
func (t *tally) err() error {
	return errors.Join(t.errs...)
}

// fanout runs fn on every node at once, each bounded by timeout (derived
// from ctx), and counts the outcomes. With failFast it returns as soon as
// the outcome for quorum q is decided; the commands still in flight go on
// until they end or time out, and the last one to end releases the
// timeout's resources.
func (m *Mutex) fanout(ctx context.Context, timeout time.Duration, failFast bool, fn nodeFunc) tally {
	n := len(m.pools)
	t := tally{nodes: n}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	if n == 1 {
		reply, err := fn(ctx, 0)
		cancel()
		t.add(nodeResult{node: 0, reply: reply, err: err})
		return t
	}

	results := make(chan nodeResult, n)
	var pending atomic.Int32
	pending.Store(int32(n))
	run := func(node int) {
		reply, err := fn(ctx, node)
		results <- nodeResult{node: node, reply: reply, err: err}
		if pending.Add(-1) == 0 {
			cancel()
		}
	}
	// Without failFast the calling goroutine waits for every node anyway,
	// so it serves the last node itself: one goroutine fewer per command.
	inline := !failFast
	for node := range n {
		if inline && node == n-1 {
			run(node)
		} else {
			go run(node)
		}
	}

	for range n {
		t.add(<-results)
		if failFast && t.decided(m.quorum) {
			break
		}
	}
	return t
}

// runScript runs script on node with args, through the pool's ScriptRunner
// when it has one, and returns its integer reply.
func (m *Mutex) runScript(ctx context.Context, node int, script *redis.Script, args []any) (int64, error) {
	var (
		reply any
		err   error
	)
	if runner := m.runners[node]; runner != nil {
		reply, err = runner.RunScript(ctx, script, args...)
	} else {
		var conn redis.Conn
		conn, err = m.pools[node].Get(ctx)
		if err != nil {
			return 0, err
		}
		reply, err = conn.Eval(script, args...)
		// The reply is what matters; a failure to close is the pool's
		// business.
		_ = conn.Close()
	}
	if err != nil {
		return 0, err
	}
	n, ok := reply.(int64)
	if !ok {
		return 0, fmt.Errorf("redsync: unexpected reply %#v to the lock script", reply)
	}
	return n, nil
}
