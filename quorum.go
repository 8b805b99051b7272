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
	tookOver  int     // of done: nodes where the key did not exist and now holds the next owner's value (transfer.lua)
	taken     []int   // nodes where another owner holds the key
	holders   []int64 // by taken node: the acquire script's reply, which tells the owner (see replyTakenBy)
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
	case r.reply == replyTookOver:
		t.done++
		t.tookOver++
	default:
		t.taken = append(t.taken, r.node)
		t.holders = append(t.holders, r.reply)
		t.errs = append(t.errs, &ErrNodeTaken{Node: r.node})
	}
}

// decided reports whether the outcome for a quorum q can no longer change:
// a quorum succeeded, or too few nodes are left to reach one. For a
// hand-off (transfer.lua), both outcomes must be known: the next owner's
// acquisition (done) and the holder's release (done less tookOver).
func (t *tally) decided(q int) bool {
	left := t.nodes - t.replied
	next := t.done >= q || t.done+left < q
	if t.tookOver == 0 {
		return next
	}
	released := t.done - t.tookOver
	return next && (released >= q || released+left < q)
}

// needs words, in the errors of nodes that lack a command a script calls
// (ErrCommandUnavailable), what needs it: option, with the commands it
// calls.
func (t *tally) needs(option string) {
	for i, err := range t.errs {
		var re *RedisError
		if errors.As(err, &re) && errors.Is(re.Err, ErrCommandUnavailable) {
			t.errs[i] = &RedisError{Node: re.Node, Err: fmt.Errorf("%s: %w", option, re.Err)}
		}
	}
}

// expired reports whether the key was missing on so many nodes that no
// quorum q could have held it: the lock had expired (or was released).
func (t *tally) expired(q int) bool {
	return t.missing > t.nodes-q
}

// lost reports whether the key was missing, or another owner's, on so
// many nodes that no quorum q could still hold it for us: the lock had
// expired (or was released), and may have been taken since.
func (t *tally) lost(q int) bool {
	return t.missing+len(t.taken) > t.nodes-q
}

// nothingTaken reports whether every node answered, and none of them
// with done or an error: a try with this tally set no key anywhere, and
// needs no undo.
func (t *tally) nothingTaken() bool {
	return t.replied == t.nodes && t.done == 0 && len(t.errs) == len(t.taken)
}

// split reports whether a failed try was a split vote: other owners hold
// some nodes, but none of them is known to hold a quorum q, and no node
// failed. Nobody holds the lock then, or its holder is still counting
// votes: no release will be announced, and the next try should come soon.
// Owners that the nodes could not tell apart (replyTaken) count as one.
func (t *tally) split(q int) bool {
	if len(t.taken) == 0 || len(t.errs) > len(t.taken) { // nothing taken, or a node failed
		return false
	}
	return t.mostHeld() < q
}

// mostHeld returns the most nodes on which one other owner holds the key
// (owners that the nodes could not tell apart count as one).
func (t *tally) mostHeld() int {
	most := 0
	for i, h := range t.holders {
		n := 0
		for _, o := range t.holders[i:] {
			if o == h {
				n++
			}
		}
		most = max(most, n)
	}
	return most
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
func (n *nodes) fanout(ctx context.Context, timeout time.Duration, failFast bool, fn nodeFunc) tally {
	return n.broadcast(ctx, timeout, failFast, nodeOp{fn: fn})
}

// fanoutScript is fanout for one script with the same args on every node.
// It needs no closure, which keeps the hot path of Lock and Unlock lean.
func (n *nodes) fanoutScript(ctx context.Context, timeout time.Duration, failFast bool, call *redis.ScriptCall) tally {
	return n.broadcast(ctx, timeout, failFast, nodeOp{call: call})
}

// nodeOp is what a round sends to each node: a script with its args, or a
// function.
type nodeOp struct {
	call  *redis.ScriptCall
	fn    nodeFunc
	trace *nodeTrace // records the nodes' results for an observer; nil for none (hooks.go)
	// settled, when not nil, is where a round that returns before every
	// node's command ended (failFast, a timeout) stores a channel that is
	// closed once they all have (with a reply, an error or their
	// timeout). It stays nil when every node had answered.
	settled *chan struct{}
	// patience, when longer than the round's timeout, is how long the
	// round may go on while its outcome is not decided (see broadcast).
	patience time.Duration
	// setNX, when not nil, is the SET NX PX command that does call's work
	// when the key is free (the plain acquire script): a pipelined round
	// sends it, and call only to the nodes where it did not set the key.
	setNX []any
}

// round is one command sent to every node, shared by the goroutines that
// serve the nodes and the caller collecting the results. Rounds are reused
// through a sync.Pool of the Redsync: whoever drops the last reference
// cancels the round's timeout and returns it to the pool.
type round struct {
	n       *nodes
	ctx     context.Context
	cancel  context.CancelFunc
	op      nodeOp
	results chan nodeResult
	refs    atomic.Int32
	settled chan struct{} // closed by the last release; nil for none
	// stage times the per-node timeout of a round with patience (see
	// broadcast); kept with the round, so that a recycled round needs no
	// new timer.
	stage *time.Timer
}

// startStage starts the round's stage timer to fire after d.
func (r *round) startStage(d time.Duration) <-chan time.Time {
	if r.stage == nil {
		r.stage = time.NewTimer(d)
	} else {
		r.stage.Reset(d)
	}
	return r.stage.C
}

func (r *round) serve(node int) {
	var res nodeResult
	res.node = node
	if r.op.fn != nil {
		res.reply, res.err = r.op.fn(r.ctx, node)
	} else {
		res.reply, res.err = r.n.runScript(r.ctx, node, r.op.call)
	}
	r.results <- res
	r.release()
}

// release drops one reference; the last one recycles the round. Results
// that a fail-fast caller did not wait for are drained first.
func (r *round) release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	r.cancel()
	for len(r.results) > 0 {
		<-r.results
	}
	settled := r.settled
	pool := r.n.rounds
	*r = round{results: r.results, stage: r.stage}
	pool.Put(r)
	if settled != nil {
		close(settled)
	}
}

// broadcast sends op to every node, each in a goroutine of its own, and
// collects the outcomes until all nodes answered, the outcome is decided
// (failFast), or the round's timeout (or ctx) ends. The timeout is enforced
// here, not left to the driver: go-redis, for one, ignores context
// deadlines unless its ContextTimeoutEnabled option is set. Nodes that did
// not answer in time count as failed; their goroutines finish in the
// background and the last one recycles the round.
//
// With op.patience longer than timeout, the round goes on after timeout
// as long as the outcome for a quorum is not decided, up to op.patience:
// a node whose pool has no connection to spare (a busy shared pool) still
// counts when it answers within the patience, and a round that a quorum
// already decided does not wait for the rest (see Mutex.patience).
func (n *nodes) broadcast(ctx context.Context, timeout time.Duration, failFast bool, op nodeOp) tally {
	limit := max(timeout, op.patience)
	if n.inline {
		return n.runInline(ctx, limit, op)
	}
	if n.pipeliners != nil && op.call != nil {
		return n.broadcastPipelined(ctx, timeout, failFast, op)
	}
	count := len(n.pools)
	t := tally{nodes: count}
	ctx, cancel := context.WithTimeout(ctx, limit)
	r, _ := n.rounds.Get().(*round)
	if r == nil || cap(r.results) != count {
		r = &round{results: make(chan nodeResult, count)}
	}
	r.n, r.ctx, r.cancel, r.op = n, ctx, cancel, op
	// With a trace, latencies are measured here, when the results come
	// in: serve and its stack stay as they are without an observer.
	var start time.Time
	if op.trace != nil {
		start = time.Now()
	}
	r.refs.Store(int32(count + 1)) // the nodes' goroutines and the caller
	for node := range count {
		go r.serve(node)
	}
	// With patience, the per-node timeout ends the round only once its
	// outcome is decided: the stage timer starts then, for what is left
	// of the timeout (none: the round ends at once). Until then nothing
	// needs it, which keeps it out of the common round.
	patient := limit > timeout
	var (
		began time.Time
		stage <-chan time.Time
	)
	if patient {
		began = time.Now()
	}
	timedOut := func() error {
		return fmt.Errorf("no reply within the per-node timeout of %v: %w", timeout, context.DeadlineExceeded)
	}

	var answered nodeSet
	answered.init(count)
	got := 0 // results received
	// unanswered counts the nodes that did not answer as failed with err.
	unanswered := func(err error) {
		for node := range count {
			if !answered.has(node) {
				res := nodeResult{node: node, err: err}
				t.add(res)
				op.trace.add(res, start)
			}
		}
	}
collect:
	for t.replied < count {
		select {
		case res := <-r.results:
			answered.add(res.node)
			got++
			t.add(res)
			op.trace.add(res, start)
			if failFast && t.decided(n.quorum) {
				break collect
			}
			if patient && stage == nil && t.replied < count && t.decided(n.quorum) {
				left := timeout - time.Since(began)
				if left <= 0 {
					unanswered(timedOut())
					break collect
				}
				stage = r.startStage(left)
			}
		case <-stage:
			unanswered(timedOut())
			break collect
		case <-ctx.Done():
			err := ctx.Err()
			if errors.Is(err, context.DeadlineExceeded) && context.Cause(ctx) == err {
				err = fmt.Errorf("no reply within the per-node timeout of %v: %w", limit, err)
			}
			unanswered(err)
			break collect
		}
	}
	if r.stage != nil {
		r.stage.Stop()
	}
	if op.settled != nil && got < count {
		// Nodes' commands are still under way: the last one to end
		// closes the channel (our reference keeps the round until then).
		r.settled = make(chan struct{})
		*op.settled = r.settled
	}
	r.release()
	return t
}

// runInline is broadcast for a single node whose pool ends its commands
// by their context's deadline (redis.DeadlineKeeper): the command runs on
// the caller's goroutine, bounded by timeout through its context.
func (n *nodes) runInline(ctx context.Context, timeout time.Duration, op nodeOp) tally {
	t := tally{nodes: 1}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	var start time.Time
	if op.trace != nil {
		start = time.Now()
	}
	res := nodeResult{node: 0}
	if op.fn != nil {
		res.reply, res.err = op.fn(ctx, 0)
	} else {
		res.reply, res.err = n.runScript(ctx, 0, op.call)
	}
	deadline, _ := ctx.Deadline()
	res.err = lateError(ctx, deadline, timeout, res.err)
	cancel()
	t.add(res)
	op.trace.add(res, start)
	return t
}

// lateError words err, the error of a node's command bounded by ctx (with
// deadline, per-node timeout), as broadcast words a node that did not
// answer in time, when the command ended because the deadline passed (the
// driver's own timeout error may come before ctx notices) or ctx ended.
func lateError(ctx context.Context, deadline time.Time, timeout time.Duration, err error) error {
	if err == nil {
		return nil
	}
	cerr := ctx.Err()
	if cerr == nil && time.Now().Before(deadline) {
		return err
	}
	if cerr != nil && (!errors.Is(cerr, context.DeadlineExceeded) || context.Cause(ctx) != cerr) {
		return context.Cause(ctx) // the caller's ctx ended
	}
	return fmt.Errorf("no reply within the per-node timeout of %v: %w", timeout, context.DeadlineExceeded)
}

// broadcastPipelined is broadcast over pools that can pipeline
// (redis.Pipeliner): the script is written to every node from this
// goroutine, then the replies are read in turn, all by the same deadline.
// A node whose pool has no open connection to spare is served by a
// goroutine of its own, as in broadcast. Without failFast every node is
// waited for (within the timeout). With failFast, a round of scripts
// returns once the replies read so far decide it; one goroutine then reads
// the remaining replies (a reply must be read before its connection can
// serve again) and closes op.settled.
func (n *nodes) broadcastPipelined(ctx context.Context, timeout time.Duration, failFast bool, op nodeOp) tally {
	count := len(n.pools)
	t := tally{nodes: count}
	// With patience (see broadcast), the nodes served by a goroutine,
	// which wait for a connection of their pool, may take until limit;
	// the replies pipelined on a connection already taken are read by the
	// per-node timeout.
	limit := max(timeout, op.patience)
	ctx, cancel := context.WithTimeout(ctx, limit)
	spillDeadline, _ := ctx.Deadline()
	deadline := spillDeadline
	if d := time.Now().Add(timeout); d.Before(deadline) {
		deadline = d
	}
	var start time.Time
	if op.trace != nil {
		start = time.Now()
	}
	late := func(err error) error { return lateError(ctx, deadline, timeout, err) }
	lateSpill := func(err error) error { return lateError(ctx, spillDeadline, limit, err) }
	add := func(res nodeResult) {
		t.add(res)
		op.trace.add(res, start)
	}
	// The replies to read, on the stack for up to 8 nodes.
	var (
		buf     [8]redis.PendingReply
		pending []redis.PendingReply
	)
	if count <= len(buf) {
		pending = buf[:count]
	} else {
		pending = make([]redis.PendingReply, count)
	}
	var (
		spill   chan nodeResult
		spilled []int // nodes served by a goroutine
	)
	for node := range count {
		var (
			p   redis.PendingReply
			ok  bool
			err error
		)
		if op.setNX != nil {
			p, ok, err = n.pipeliners[node].SendCommand(ctx, op.setNX...)
		} else {
			p, ok, err = n.pipeliners[node].SendScript(ctx, op.call)
		}
		switch {
		case !ok:
			if spill == nil {
				spill = make(chan nodeResult, count)
			}
			spilled = append(spilled, node)
			go func() {
				res := nodeResult{node: node}
				res.reply, res.err = n.runScript(ctx, node, op.call)
				spill <- res
			}()
		case err != nil:
			add(nodeResult{node: node, err: late(err)})
		default:
			pending[node] = p
		}
	}
	var again []int // nodes where SET NX did not set the key
	for node, p := range pending {
		if p == nil {
			continue
		}
		pending[node] = nil
		res := nodeResult{node: node}
		if op.setNX != nil {
			reply, err := p.Receive(deadline)
			switch {
			case err == nil && reply == nil:
				again = append(again, node)
				continue
			case err == nil && isOK(reply):
				res.reply = replyDone
			case err == nil:
				res.err = fmt.Errorf("redsync: unexpected reply %#v to SET NX", reply)
			default:
				res.err = err
			}
		} else {
			res.reply, res.err = scriptReply(p.Receive(deadline))
		}
		res.err = late(res.err)
		add(res)
		if failFast && op.setNX == nil && t.decided(n.quorum) {
			n.drainPipelined(ctx, cancel, deadline, pending, spill, len(spilled), op.settled)
			return t
		}
	}
	// The key was there: the script tells whose it is (or that it is of
	// another type, or this owner's from an earlier reply that was lost).
	// Those scripts are pipelined too.
	for _, node := range again {
		p, ok, err := n.pipeliners[node].SendScript(ctx, op.call)
		switch {
		case !ok:
			res := nodeResult{node: node}
			res.reply, res.err = n.runScript(ctx, node, op.call)
			res.err = late(res.err)
			add(res)
		case err != nil:
			add(nodeResult{node: node, err: late(err)})
		default:
			pending[node] = p
		}
	}
	for node, p := range pending {
		if p != nil {
			pending[node] = nil
			res := nodeResult{node: node}
			res.reply, res.err = scriptReply(p.Receive(deadline))
			res.err = late(res.err)
			add(res)
		}
	}
	var answered nodeSet
	answered.init(count)
	var patient <-chan time.Time
	if limit > timeout && len(spilled) > 0 {
		stage := time.NewTimer(time.Until(deadline))
		defer stage.Stop()
		patient = stage.C
	}
	// pastTimeout: past the per-node timeout, wait only for an outcome
	// that is not decided yet.
	pastTimeout := false
	for waiting := len(spilled); waiting > 0; {
		select {
		case res := <-spill:
			answered.add(res.node)
			res.err = lateSpill(res.err)
			add(res)
			waiting--
		case <-patient:
			patient, pastTimeout = nil, true
		case <-ctx.Done():
			// The goroutines end by the same deadline; their results are
			// no longer waited for.
			for _, node := range spilled {
				if !answered.has(node) {
					add(nodeResult{node: node, err: lateSpill(ctx.Err())})
				}
			}
			waiting = 0
		}
		if (failFast || pastTimeout) && waiting > 0 && t.decided(n.quorum) {
			for _, node := range spilled {
				if !answered.has(node) && pastTimeout {
					add(nodeResult{node: node, err: late(context.DeadlineExceeded)})
				}
			}
			// Their commands go on in the background, as broadcast's.
			n.drainPipelined(ctx, cancel, deadline, nil, spill, waiting, op.settled)
			return t
		}
	}
	cancel()
	return t
}

// drainPipelined ends, in a goroutine of its own, a pipelined round that
// returned early: it reads the replies still pending (nil entries are
// skipped), waits for the spilled nodes' goroutines (by the round's
// deadline), then cancels the round's context and closes the channel it
// stores in *settled (when settled is not nil). The outcomes no longer
// count.
func (n *nodes) drainPipelined(ctx context.Context, cancel context.CancelFunc, deadline time.Time, pending []redis.PendingReply, spill chan nodeResult, spilled int, settledp *chan struct{}) {
	var rest []redis.PendingReply
	for _, p := range pending {
		if p != nil {
			rest = append(rest, p)
		}
	}
	if len(rest) == 0 && spilled == 0 {
		cancel()
		return
	}
	var settled chan struct{}
	if settledp != nil {
		settled = make(chan struct{})
		*settledp = settled
	}
	go func() {
		for _, p := range rest {
			_, _ = p.Receive(deadline)
		}
		for range spilled {
			select {
			case <-spill:
			case <-ctx.Done():
			}
		}
		cancel()
		if settled != nil {
			close(settled)
		}
	}()
}

// nodeSet is a set of node indexes, without allocation for up to 64 nodes.
type nodeSet struct {
	small uint64
	large []bool
}

func (s *nodeSet) init(n int) {
	if n > 64 {
		s.large = make([]bool, n)
	}
}

func (s *nodeSet) add(node int) {
	if s.large != nil {
		s.large[node] = true
		return
	}
	s.small |= 1 << node
}

func (s *nodeSet) has(node int) bool {
	if s.large != nil {
		return s.large[node]
	}
	return s.small&(1<<node) != 0
}

// runScript runs call on node, through the pool's ScriptRunner when it has
// one, and returns its integer reply.
func (n *nodes) runScript(ctx context.Context, node int, call *redis.ScriptCall) (int64, error) {
	return scriptReply(evalScript(ctx, n.pools[node], n.runners[node], call))
}

// isOK reports whether reply is the status reply OK, as a driver returns it.
func isOK(reply any) bool {
	switch r := reply.(type) {
	case string:
		return r == "OK"
	case []byte:
		return string(r) == "OK"
	}
	return false
}

// scriptReply turns the reply of a lock script into its integer.
func scriptReply(reply any, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	n, ok := reply.(int64)
	if !ok {
		return 0, fmt.Errorf("redsync: unexpected reply %#v to the lock script", reply)
	}
	return n, nil
}

// evalScript runs call on pool, through runner (the pool as a
// ScriptRunner, or nil) when there is one, and returns its reply.
func evalScript(ctx context.Context, pool redis.Pool, runner redis.ScriptRunner, call *redis.ScriptCall) (any, error) {
	if runner != nil {
		return runner.RunScript(ctx, call)
	}
	conn, err := pool.Get(ctx)
	if err != nil {
		return nil, err
	}
	reply, err := conn.Eval(call.Script(), call.KeysAndArgs()...)
	// The reply is what matters; a failure to close is the pool's
	// business.
	_ = conn.Close()
	return reply, err
}
