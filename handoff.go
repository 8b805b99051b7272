package redsync

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"errors"
	mathrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Hand-off by a queue of waiters on the nodes.
//
// A Lock call whose first try failed becomes a waiter (one that may wait
// becomes a waiter before its first try while its Redsync still listens,
// see lockWait.begin). Its next try, sent at once, runs queue_acquire.lua: it takes the lock where the key is
// free, and elsewhere adds the waiter to a queue kept next to the key, a
// sorted set whose entries are the waiter's member ("<Redsync id>:<number>")
// scored with a ticket the client chose (the time it started waiting, in
// microseconds). The same ticket goes to every node, so the queue has the
// same order on every node that has the entries. Each entry lives for the
// lock's expiry (at least a second), and every try of the waiter renews it
// (a waiter tries at least every half life); a waiter that crashed drops
// out when its entry's life ends.
//
// The queue decides whom a release wakes, never who holds: the lock key
// keeps exactly what it holds without a queue, and any try, SET NX of a v4
// client included, takes a free key as before. Unlock runs
// release_notify.lua: where it deletes the key, it takes the first live
// entry out of the queue and tells that waiter on its Redsync's channel
// ("redsync:wake:<Redsync id>", which each Redsync with waiters listens to
// on every node) with "turn <member> <SHA1 of the released value>"; only
// when that PUBLISH reached nobody on the node (the waiter's process may
// have ended), it also names the next two live waiters of other Redsyncs
// with "next <member> <SHA1> <rank>", standbys of rank 1 and 2 (wake, in
// queue_lib.lua). When turns
// of one release came from a quorum of nodes, the waiter tries at once:
// one process tries per release, instead of every waiter of every
// process. A waiter named a standby of rank r by a quorum tries when r
// standbyWaits have passed without a turn of its own: a turn given to a
// waiter whose process ended costs the others one standbyWait, not their
// retry delay (a waiter that gave up as its turn came wakes the next with
// its withdrawal; a turn heard but not acted on waits for the retry
// delay: docs/LIFETIME.md lists when). A turn from fewer
// nodes than a quorum makes the waiter try after a standbyWait too (the
// nodes' queues may have come apart), unless it came from the undo of its
// own try. A waiter whose try lost to another client (a poller, a
// newcomer) puts its entry back with its ticket: it is first again at the
// next release.
//
// A waiter that ends without the lock withdraws (queue_leave.lua) before
// its Lock returns, which wakes the first waiter where the key is free; a
// failed try is undone by the same script, which puts the waiter back in
// the queue and wakes the first waiter (unless the try found another
// owner holding the lock on a quorum: its release will). Undos and
// withdrawals leave the woken waiter in the queue, since they may free
// the key on fewer nodes than a quorum. A waiter that took the lock sends nothing
// more (a round then would eat into its validity): the entries its try
// left where it failed go with its Unlock (release_notify.lua) or its
// local hand-off (transfer.lua), which get its member and ticket, or with
// their life. The retry delay stays as the fallback: a release by expiry,
// or by a client that wakes nobody, wakes nobody.
//
// A process needs only one entry in the queues per lock: the lock goes
// from one of its Lock calls to the next by the local hand-off
// (transfer.go), which passes the queues by. So a Lock call that becomes
// a waiter before its first try skips that try while a waiter of its
// Redsync that is listed (in the queues of a quorum, or its queue try
// under way) waits for the lock: it stands behind, with no entry of its
// own (lockWait.begin), saving the round that would only join the queues.
// The listed waiter stands for the process: a release that wakes it lets
// it take the lock, and the local hand-off then serves the others.
// Whenever the last listed waiter of a lock ends (it took the lock, was
// handed it, or gave up) or lapses (its try failed on too many nodes),
// the last waiter standing behind tries at once (keyWaiters.cover): it
// joins the queues, or takes the lock when it is free, so that a release
// by anyone (after the local holder's lock expired, or by a Mutex of
// another process given its value) wakes the process. Waiters that poll
// (fencing, a restart guard) are never listed, and nobody stands behind
// them.

//go:embed lua/queue_acquire.lua
var queueAcquireSrc string

//go:embed lua/queue_leave.lua
var queueLeaveSrc string

var (
	queueAcquireScript = redis.NewScript(2, queueLibSrc+queueAcquireSrc, "")
	queueLeaveScript   = redis.NewScript(2, queueLibSrc+queueLeaveSrc, "")
)

// queueKeyPrefix starts the key of every queue of waiters.
const queueKeyPrefix = "redsync:queue:"

// queueKey returns the key of the queue of waiters of the lock key: the
// prefix, a hash tag that hashes to key's Redis Cluster slot (as
// fenceCounter), and key itself. Built here rather than in the scripts: no
// two lock names share a queue ("doc" and "{doc}" have two), and a name
// with braces but no valid hash tag of its own ("a}b") still has its queue
// in its slot.
func queueKey(key string) string {
	return queueKeyPrefix + "{" + slotTag(keySlot(key)) + "}:" + key
}

// Names the scripts build too.
const (
	// releaseChannelPrefix starts the channel on which a release is
	// announced when nobody is queued for the key (release_notify.lua).
	releaseChannelPrefix = "redsync:released:"
	// wakeChannelPrefix starts the channel of a Redsync, on which its
	// waiters are told their turn.
	wakeChannelPrefix = "redsync:wake:"
)

// releaseChannel is the channel on which releases of key are announced
// when nobody is queued.
func releaseChannel(key string) string {
	return releaseChannelPrefix + key
}

// Timing of the queue and of the listening connections.
const (
	// standbyWait is how long a waiter named next waits for a turn of its
	// own before it tries (times its rank).
	standbyWait = 100 * time.Millisecond
	// maxStandbyRank bounds the rank of a standby (the scripts name
	// ranks 1 and 2).
	maxStandbyRank = 4
	// minEntryLife is the shortest life of a queue entry.
	minEntryLife = time.Second

	listenTimeout  = time.Second            // bounds dialling and each subscribe command
	listenBackoff  = 100 * time.Millisecond // first wait before reconnecting a failed node
	listenMaxDelay = 5 * time.Second        // longest wait before reconnecting
	// listenLinger is how long the listening connections stay after the
	// last waiter left: a process that locks again soon keeps them.
	listenLinger = 200 * time.Millisecond

	// turnMemory is how many releases per waiter are remembered to group
	// their turns from the nodes.
	turnMemory = 4
)

// notifier tells the waiting Lock calls of a Redsync their turns. It is
// part of a Redsync and shared by all its mutexes; it starts a goroutine
// per node (and the adapter starts its reader) only while some Lock waits,
// and ends them listenLinger after the last one left.
type notifier struct {
	quorum  int
	nodes   []*listenNode // one per pool that is a redis.Subscriber
	id      string        // random: names the channel and the waiters' members
	channel string        // wakeChannelPrefix + id

	watched atomic.Int32 // registered waiters, read without the lock

	mu       sync.Mutex
	keys     map[string]*keyWaiters // by lock name, while some Lock waits for it
	members  map[string]*waiter     // registered waiters, by member
	seq      uint64                 // last waiter number
	ticket   int64                  // last ticket handed out
	nconfirm atomic.Int32           // nodes whose subscription is confirmed; changed under mu, read without it
	idle     time.Time              // when the last waiter left (zero while some wait)
	// freeSeen is, by lock name, the last try that may have found the
	// key free on a node (sawFree), and freeAll one for every name; freeKeep
	// bounds how long a note is kept.
	freeSeen map[string]freeNote
	freeAll  freeNote
	freeKeep time.Duration
}

// newNotifier returns the notifier of a Redsync over pools. When too few
// of them can subscribe for a quorum of turns ever to arrive, it listens to
// none: its waiters join no queue and are only polled, or handed the lock
// by an Unlock of the same Redsync (transfer.go).
func newNotifier(pools []redis.Pool) *notifier {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	n := &notifier{
		quorum:  len(pools)/2 + 1,
		id:      hex.EncodeToString(b[:]),
		keys:    map[string]*keyWaiters{},
		members: map[string]*waiter{},
	}
	n.channel = wakeChannelPrefix + n.id
	for i, p := range pools {
		if s, ok := p.(redis.Subscriber); ok {
			n.nodes = append(n.nodes, &listenNode{n: n, index: i, slot: len(n.nodes), sub: s, kick: make(chan struct{}, 1)})
		}
	}
	if len(n.nodes) < n.quorum {
		n.nodes = nil
	}
	return n
}

// listens reports whether the notifier listens for turns.
func (n *notifier) listens() bool {
	return len(n.nodes) > 0
}

// hears reports whether a quorum of nodes would deliver a turn now: only
// then do waiters join the queue. Without n.mu, the answer may be stale.
func (n *notifier) hears() bool {
	return n.listens() && int(n.nconfirm.Load()) >= n.quorum
}

// keyWaiters are the Lock calls of a Redsync waiting for one lock.
type keyWaiters struct {
	key     string
	waiters []*waiter // registered, by ticket
	queue   []*waiter // waiting now, by ticket: a local hand-off takes the first
}

// freeNote is what sawFree keeps of a try that may have found a lock's
// key free on a node: when its round ended, and its calls (which excludes
// the acquisition that try made from the note).
type freeNote struct {
	at time.Time
	by *lockCalls
}

// refuses reports whether the note rules out passing on an acquisition
// whose keys were set by the round of root, which started at start.
func (f freeNote) refuses(root *lockCalls, start time.Time) bool {
	return !f.at.IsZero() && !f.at.Before(start) && f.by != root
}

// maxFreeNotes bounds the notes kept by name; past it, one note stands for
// every name.
const maxFreeNotes = 64

// sawFree notes that a try of a Mutex of names (by its calls), whose round
// ended at at, may have found their key free on some node (see passOn). A
// note older than the longest per-node timeout of the Redsync's Mutexes
// (keepFor) is dropped: an acquisition is passed on only within the
// shorter per-node timeout of its round's start, so a note that old is
// before the round of any acquisition that could still be passed on.
func (n *notifier) sawFree(names []string, at time.Time, by *lockCalls) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, f := range n.freeSeen {
		if at.Sub(f.at) > n.freeKeep {
			delete(n.freeSeen, k)
		}
	}
	if at.Sub(n.freeAll.at) > n.freeKeep {
		n.freeAll = freeNote{}
	}
	if n.freeSeen == nil {
		n.freeSeen = map[string]freeNote{}
	}
	for _, name := range names {
		if len(n.freeSeen) >= maxFreeNotes {
			clear(n.freeSeen)
			n.freeAll = freeNote{at: at} // refuses every name until it ages out
		}
		n.freeSeen[name] = freeNote{at: at, by: by}
	}
}

// keepFor makes sawFree keep its notes at least d, the per-node timeout
// of a new Mutex of the Redsync.
func (n *notifier) keepFor(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.freeKeep = max(n.freeKeep, d)
}

// freeRefuses reports whether a note rules out passing on an acquisition
// of key whose keys were set by the round of root, started at start.
func (n *notifier) freeRefuses(key string, root *lockCalls, start time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.freeSeen[key].refuses(root, start) || n.freeAll.refuses(root, start)
}

// standing is where a waiter stands in the nodes' queues of waiters.
type standing int8

const (
	// unlisted: no queue try of the waiter has gone out (yet), or it
	// polls.
	unlisted standing = iota
	// behind: the waiter skipped its first try to wait behind a listed
	// waiter of its Redsync (lockWait.begin); it has no entry on the
	// nodes, and relies on that waiter until a try of its own.
	behind
	// lapsed: a queue try of the waiter went out, which may have left
	// entries, but its last one failed on too many nodes (node errors) to
	// leave it in the queues of a quorum: it stands for nobody.
	lapsed
	// listed: a queue try of the waiter went out, and none has failed on
	// too many nodes since: the waiter is in the queues of a quorum (or
	// its try is under way).
	listed
)

// mayHaveEntries reports whether a queue try of the waiter went out,
// which may have left entries of it on the nodes.
func (s standing) mayHaveEntries() bool {
	return s >= lapsed
}

// turnSeen gathers the turns (or nexts) of one release from the nodes.
type turnSeen struct {
	id    string
	nodes nodeSet
	count int
}

// waiter is one Lock call waiting for a lock. Its methods are nil-safe: a
// nil waiter (no notification) waits for nothing.
type waiter struct {
	n      *notifier
	m      *Mutex // the Mutex whose Lock call waits
	kw     *keyWaiters
	member string // in the queues of the nodes, and in the turns
	ticket int64  // orders the queues: the same on every node
	// ticketArg is ticket for the scripts.
	ticketArg string
	wake      chan struct{} // one token: look at the waiter's state

	// Guarded by n.mu; written only by the waiter's own Lock call, which
	// may read it without the lock.
	standing standing

	// Guarded by n.mu.
	queued bool // in kw.queue: waiting now
	// grant is set when a holder of this Redsync took the waiter out of
	// kw.queue to hand it the lock directly (transfer.go).
	grant *grant
	// done is the Done channel of the Lock call's ctx (nil for none): a
	// waiter whose ctx has ended is not passed a lock (passOn).
	done  <-chan struct{}
	turns []turnSeen // by release: nodes that gave the waiter the turn
	nexts []turnSeen // by release: nodes that named the waiter next
	// turned is set when a quorum gave the waiter its turn (or a quorum
	// of nodes began listening, and a turn may have been missed): try now.
	// ownTurn is set with it when only the undo of one of the waiter's
	// own tries gave it (see lockWait.takeTurn).
	turned, ownTurn bool
	// standby, when not zero, is when to try if no turn has come: a
	// quorum named the waiter next, or a node gave it a turn.
	standby time.Time
	// tries are the ids (SHA1 of the value) of the waiter's last two
	// queue tries: the undo of one may wake the waiter itself from a node
	// where the try found the key free, which is no news to it.
	tries [2]string
}

// queueTry is what a try of a waiting Lock that joins the nodes' queues
// of waiters adds to its calls (lockCalls.queue).
type queueTry struct {
	// quietUndo is the undo of the try when it found another owner
	// holding the lock on a quorum: it wakes nobody, since that owner's
	// release will.
	quietUndo redis.ScriptCall
	// member and ticket are the waiter's entry in the queues, which the
	// release or local hand-off of an acquisition made by the try removes
	// where the try failed.
	member, ticket string
}

// keepEntries makes c, the calls of an acquisition passed on without a
// round (passOn in transfer.go), carry the entries, member and ticket,
// that the try which made it left in the queues where it failed, as the
// calls of that try did: its release takes them out, and so does a
// transfer round, which gets them from entry.
func (c *lockCalls) keepEntries(m *Mutex, member, ticket string) {
	c.queue = &queueTry{member: member, ticket: ticket}
	c.release = redis.NewScriptCall(releaseNotifyScript, m.keyArg, m.queueKeyArg, c.value, member, ticket)
}

// entry returns the member and ticket of the entries that an acquisition
// made by a try of calls left in the queues; "" when it made none.
func (c *lockCalls) entry() (member, ticket string) {
	if c.queue == nil {
		return "", ""
	}
	return c.queue.member, c.queue.ticket
}

// watch registers a waiter for the lock of m and makes sure every node
// listens on the Redsync's channel.
func (n *notifier) watch(m *Mutex) *waiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.register(m)
}

// watchBehind is watch for a Lock call that has not tried yet: when a
// listed waiter of this Redsync waits for the lock, the new waiter stands
// behind it (see lockWait.begin). Deciding that and registering the
// waiter, which makes it one that a listed waiter's end wakes (cover), is
// one step under n.mu: no wake-up can fall between them.
func (n *notifier) watchBehind(m *Mutex) *waiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.register(m)
	if slices.ContainsFunc(w.kw.waiters, func(q *waiter) bool { return q.standing == listed }) {
		w.standing = behind
	}
	return w
}

// register is watch; the caller holds n.mu.
func (n *notifier) register(m *Mutex) *waiter {
	kw := n.keys[m.name]
	if kw == nil {
		kw = &keyWaiters{key: m.name}
		n.keys[m.name] = kw
	}
	n.seq++
	ticket := time.Now().UnixMicro()
	if ticket <= n.ticket {
		ticket = n.ticket + 1
	}
	n.ticket = ticket
	w := &waiter{
		n: n, m: m, kw: kw,
		member:    n.id + ":" + strconv.FormatUint(n.seq, 10),
		ticket:    ticket,
		ticketArg: strconv.FormatInt(ticket, 10),
		wake:      make(chan struct{}, 1),
	}
	kw.waiters = append(kw.waiters, w)
	n.members[w.member] = w
	if n.watched.Add(1) == 1 {
		n.idle = time.Time{}
		n.kickAll()
	}
	return w
}

// entry returns the member and ticket by which the nodes' queues may know
// w, for the scripts that take it out; empty when no queue try of w went
// out (it stands behind, or polls), so that they look for nothing.
func (w *waiter) entry() (member, ticket string) {
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	if !w.standing.mayHaveEntries() {
		return "", ""
	}
	return w.member, w.ticketArg
}

// signal hands w a token on its wake channel. The caller holds n.mu.
func (w *waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// wait puts w among the waiters of its key that a local hand-off may take,
// and returns the channel on which it is woken.
func (w *waiter) wait() <-chan struct{} {
	if w == nil {
		return nil
	}
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	if !w.queued {
		i, _ := slices.BinarySearchFunc(w.kw.queue, w.ticket, func(q *waiter, t int64) int {
			switch {
			case q.ticket < t:
				return -1
			case q.ticket > t:
				return 1
			}
			return 0
		})
		w.kw.queue = slices.Insert(w.kw.queue, i, w)
		w.queued = true
	}
	return w.wake
}

// take reads and clears what woke w: its turn, and when to try if no turn
// comes (zero: not named next).
func (w *waiter) take() (turned, own bool, standby time.Time) {
	if w == nil {
		return false, false, time.Time{}
	}
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	turned, own, standby = w.turned, w.ownTurn, w.standby
	// A 'next' of another owner from some nodes so far asks for a try as
	// much as a standby time: the own turn is not alone then
	// (TestReview18ForeignNextWithOwnTurnDropped).
	own = own && !w.foreignNext()
	w.turned, w.ownTurn = false, false
	return turned, own, standby
}

// foreignNext reports whether another owner's release named the waiter
// next since its last try, from any number of nodes. The caller holds
// n.mu.
func (w *waiter) foreignNext() bool {
	return slices.ContainsFunc(w.nexts, func(s turnSeen) bool { return !slices.Contains(w.tries[:], s.id) })
}

// stopWaiting ends the wait of w: it takes w out of its key's waiters (when
// the timer or the context won) and, when a holder took w out to hand it
// the lock directly, waits for that hand-off to end and returns it if the
// lock is now w's. claimed tells whether a hand-off was tried at all.
func (w *waiter) stopWaiting() (g *grant, claimed bool) {
	if w == nil {
		return nil, false
	}
	w.n.mu.Lock()
	w.unqueue()
	g = w.grant
	w.grant = nil
	w.n.mu.Unlock()
	if g == nil {
		return nil, false
	}
	<-g.done
	if !g.ok {
		return nil, true
	}
	return g, true
}

// unqueue removes w from its key's waiters. The caller holds n.mu.
func (w *waiter) unqueue() {
	if !w.queued {
		return
	}
	w.queued = false
	if i := slices.Index(w.kw.queue, w); i >= 0 {
		w.kw.queue = slices.Delete(w.kw.queue, i, i+1)
	}
}

// tryStarts forgets the turns that came before a try: the try uses them.
// It reports whether one of them was another owner's (a turn, a standby
// time, a 'next' from some nodes so far), which the try then serves too
// (TestReview16NextSplitByTryKeepsRun).
func (w *waiter) tryStarts() (foreign bool) {
	if w == nil {
		return false
	}
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	foreign = w.turned && !w.ownTurn || !w.standby.IsZero() || w.foreignNext()
	w.turns, w.nexts = w.turns[:0], w.nexts[:0]
	w.turned, w.ownTurn, w.standby = false, false, time.Time{}
	return foreign
}

// close unregisters w; the last waiter of the Redsync lets the listening
// connections go after listenLinger.
func (w *waiter) close() {
	if w == nil {
		return
	}
	n := w.n
	n.mu.Lock()
	defer n.mu.Unlock()
	w.unqueue()
	delete(n.members, w.member)
	kw := w.kw
	kw.waiters = slices.DeleteFunc(kw.waiters, func(q *waiter) bool { return q == w })
	if len(kw.waiters) == 0 && n.keys[kw.key] == kw {
		delete(n.keys, kw.key)
	}
	kw.cover()
	if n.watched.Add(-1) == 0 {
		n.idle = time.Now()
		n.kickAll()
	}
}

// cover keeps the waiters that stand behind (lockWait.begin) from waiting
// with nobody of their Redsync on the nodes: when no listed waiter is
// left (one ended or lapsed), the last of them to come tries at once, as
// after a turn, and so joins the queues (or takes the lock, when it is
// free). The last, not the first: the first is the next to be handed the
// lock locally, and would soon leave the queues again. The caller holds
// n.mu.
func (kw *keyWaiters) cover() {
	var last *waiter
	for _, w := range kw.waiters {
		switch w.standing {
		case listed:
			return
		case behind:
			last = w
		}
	}
	if last != nil {
		last.turned, last.ownTurn = true, false
		last.signal()
	}
}

// heard counts node's message of the release id in seen and returns how
// many nodes have now sent one: quorum once (the message that makes the
// quorum), 0 for a repeat from the same node.
func heard(seen *[]turnSeen, node, nodes int, id string) int {
	i := slices.IndexFunc(*seen, func(s turnSeen) bool { return s.id == id })
	if i < 0 {
		if len(*seen) == turnMemory {
			*seen = slices.Delete(*seen, 0, 1)
		}
		s := turnSeen{id: id}
		s.nodes.init(nodes)
		*seen = append(*seen, s)
		i = len(*seen) - 1
	}
	s := &(*seen)[i]
	if s.nodes.has(node) {
		return 0
	}
	s.nodes.add(node)
	s.count++
	return s.count
}

// receive handles a message of node's listener of generation gen.
func (n *notifier) receive(ln *listenNode, gen uint64, msg redis.Message) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != ln.gen {
		return // from a listener that was replaced or closed
	}
	switch {
	case msg.Err != nil:
		ln.broken = true
		if ln.confirmed {
			ln.confirmed = false
			n.nconfirm.Add(-1)
		}
		ln.kickLocked()
	case msg.Subscribed:
		ln.failures = 0
		if msg.Channel != n.channel || ln.confirmed {
			return
		}
		ln.confirmed = true
		if int(n.nconfirm.Add(1)) == n.quorum {
			// A quorum listens only now: a turn given meanwhile may have
			// gone unheard, and waiters that could not join the queue
			// may now. Every waiter tries once.
			for _, w := range n.members {
				w.turned, w.ownTurn = true, false
				w.signal()
			}
		}
	case msg.Channel == n.channel:
		kind, rest, _ := strings.Cut(msg.Payload, " ")
		member, id, _ := strings.Cut(rest, " ")
		// A standby's rank follows the release's id ("next <member> <id>
		// <rank>"): it tries after rank standby waits.
		id, rankArg, _ := strings.Cut(id, " ")
		rank, err := strconv.Atoi(rankArg)
		if err != nil || rank < 1 {
			rank = 1
		}
		w := n.members[member]
		if w == nil {
			return // a waiter that has ended (its standbys cover the turn)
		}
		switch kind {
		case "turn":
			own := slices.Contains(w.tries[:], id)
			count := heard(&w.turns, ln.slot, len(n.nodes), id)
			switch {
			case count == n.quorum && own:
				// Only own turns so far: ownTurn, which may be ignored
				// (lockWait.takeTurn); a standby time set by another
				// owner's release stays for that case.
				if !w.turned {
					w.turned, w.ownTurn = true, true
				}
				w.signal()
			case count == n.quorum:
				w.turned, w.ownTurn, w.standby = true, false, time.Time{}
				w.signal()
			case count == 1 && !own && (w.standby.IsZero() || now.Add(standbyWait).Before(w.standby)):
				// A turn from fewer nodes than a quorum, so far: the rest
				// may follow, or the nodes' queues have come apart (a
				// node lost its queue, or woke the waiter alone). Either
				// way the waiter tries after a standby wait; its try puts
				// its entry back where it is missing. A turn from the undo
				// of the waiter's own try is not news: trying again then
				// would go on for as long as a node misses the holder's
				// key (TestReview6DownNodeDefeatsQuietUndoStorm).
				w.standby = now.Add(standbyWait)
				w.signal()
			}
		case "next":
			// A turn waiting to be taken makes a standby time moot, unless
			// only the waiter's own undos gave it.
			if heard(&w.nexts, ln.slot, len(n.nodes), id) == n.quorum && (!w.turned || w.ownTurn) {
				w.standby = now.Add(time.Duration(min(rank, maxStandbyRank)) * standbyWait)
				w.signal()
			}
		}
	}
}

// active reports whether the listeners should run: some Lock waits, or the
// last one left less than listenLinger ago (then it also returns how long
// is left). The caller holds n.mu.
func (n *notifier) active(now time.Time) (bool, time.Duration) {
	if n.watched.Load() > 0 {
		return true, 0
	}
	left := listenLinger - now.Sub(n.idle)
	return left > 0, left
}

// kickAll tells every node's listener to look at the notifier again,
// starting it if needed. The caller holds n.mu.
func (n *notifier) kickAll() {
	for _, ln := range n.nodes {
		if !ln.running && n.watched.Load() > 0 {
			ln.running = true
			go ln.run()
			continue
		}
		ln.kickLocked()
	}
}

// listenNode owns the listening connection to one node: its goroutine
// (run) subscribes to the Redsync's channel while some Lock waits,
// reconnects after failures, and ends, closing the connection, once none
// has waited for listenLinger.
type listenNode struct {
	n     *notifier
	index int // in the Redsync's pools
	slot  int // in n.nodes, for node sets
	sub   redis.Subscriber
	kick  chan struct{} // one token: look at the notifier again

	// Guarded by n.mu.
	running   bool   // run is active
	gen       uint64 // generation of the current listener
	broken    bool   // the current listener reported a failure
	failures  int    // failures since the last confirmed subscription
	confirmed bool   // the current listener's subscription is confirmed
}

func (ln *listenNode) kickLocked() {
	select {
	case ln.kick <- struct{}{}:
	default:
	}
}

// run keeps the node's listener subscribed while the notifier is active.
func (ln *listenNode) run() {
	n := ln.n
	var (
		lis        redis.Listener
		subscribed bool
		retryAt    time.Time
		timer      = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	for {
		n.mu.Lock()
		active, linger := n.active(time.Now())
		if ln.broken || !active {
			// Retire the listener: late messages of it are ignored.
			ln.gen++
			old := lis
			lis, subscribed = nil, false
			if ln.confirmed {
				ln.confirmed = false
				n.nconfirm.Add(-1)
			}
			if ln.broken {
				ln.broken = false
				retryAt = time.Now().Add(backoff(ln.failures))
			}
			if !active {
				ln.running = false
			}
			n.mu.Unlock()
			if old != nil {
				_ = old.Close()
			}
			if !active {
				return
			}
			continue
		}
		gen := ln.gen
		n.mu.Unlock()

		if wait := time.Until(retryAt); lis == nil && wait > 0 {
			if linger > 0 {
				// Nobody waits: end with the linger, not the back-off.
				wait = min(wait, linger)
			}
			timer.Reset(wait)
			select {
			case <-ln.kick:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		if !subscribed {
			if err := ln.subscribe(&lis, gen); err != nil {
				n.mu.Lock()
				if gen == ln.gen {
					ln.broken = true
					ln.failures++
				}
				n.mu.Unlock()
				continue
			}
			subscribed = true
		}
		if linger > 0 {
			timer.Reset(linger)
			select {
			case <-ln.kick:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		<-ln.kick
	}
}

// subscribe opens the listener if needed and subscribes to the channel.
func (ln *listenNode) subscribe(lis *redis.Listener, gen uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), listenTimeout)
	defer cancel()
	if *lis == nil {
		l, err := ln.sub.Listen(ctx, func(msg redis.Message) { ln.n.receive(ln, gen, msg) })
		if err != nil {
			return err
		}
		*lis = l
	}
	return (*lis).Subscribe(ctx, ln.n.channel)
}

// backoff is the wait before reconnecting after failures failures.
func backoff(failures int) time.Duration {
	d := listenBackoff
	for range min(failures, 10) {
		d *= 2
	}
	d = min(d, listenMaxDelay)
	return d/2 + mathrand.N(d/2)
}

// lockWait is the wait of one Lock call between tries: the retry delay,
// cut short by the waiter's turn, a local hand-off, or a short random
// back-off after a try that nobody won.
type lockWait struct {
	m     *Mutex
	w     *waiter
	timer *time.Timer
	// next is when the next counted try is due (zero: not scheduled yet);
	// soon, when positive, is a short wait before an extra try.
	next   time.Time
	soon   time.Duration
	split  bool // the last try was a split vote (tally.split)
	splits int  // consecutive split votes
	// join is set when the waiter should join the queue with a try at
	// once (or after a split vote's back-off).
	join bool
	// owns counts the tries in a row, up to the last one, that turns
	// from the waiter's own undos brought forward (see takeTurn).
	owns int
	// clean is set once the lock was taken where every node dropped the
	// waiter's entries.
	clean bool
	// renew, while the waiter is in the queues, is when an extra try is
	// due to renew its entries before their life ends.
	renew time.Time
}

// waitResult is how a wait between tries ended.
type waitResult int

const (
	waitTry     waitResult = iota // the next counted try is due
	waitExtra                     // an extra try is due: a turn, a back-off ended, joining the queue
	waitGranted                   // a holder of this Redsync handed the lock over
	waitDone                      // ctx ended
)

// await waits before try (counted from 0) until the next counted try is
// due, the waiter's turn or the back-off after a split vote brings an
// extra try forward, a holder of this Redsync hands the lock over (the
// grant is returned), or ctx ends.
func (lw *lockWait) await(ctx context.Context, try int) (waitResult, *grant) {
	// A try that this wait brings by anything but a turn from the
	// waiter's own undos ends their run (see takeTurn).
	run := lw.owns
	lw.owns = 0
	now := time.Now()
	if lw.next.IsZero() {
		lw.next = now.Add(lw.retryDelay(lw.m.delayFunc(try)))
	}
	soon := lw.soon
	lw.soon = 0
	if lw.join {
		lw.join = false
		if soon <= 0 {
			return waitExtra, nil
		}
	}
	wake := lw.next
	if soon > 0 && now.Add(soon).Before(wake) {
		wake = now.Add(soon)
	}
	if !lw.renew.IsZero() && lw.renew.Before(wake) {
		wake = lw.renew
	}
	woken := lw.w.wait()
	for {
		// A turn may have come during the try before this wait (the try
		// reached the nodes before the release): try again at once.
		turned, standby := lw.takeTurn(run, soon > 0 || renewDue(lw.renew))
		if turned {
			r, g := lw.end(ctx, waitExtra)
			return r, g
		}
		due := wake
		if !standby.IsZero() && standby.Before(due) {
			due = standby
		}
		lw.startTimer(time.Until(due))
		r := waitTry
		select {
		case <-ctx.Done():
			r = waitDone
		case <-lw.timer.C:
			if time.Now().Before(lw.next) {
				r = waitExtra // a back-off, a renewal, or a turn that did not come
			}
		case <-woken:
			turned, _ := lw.takeTurn(run, soon > 0 || renewDue(lw.renew))
			if !turned && !lw.granted() {
				continue // named next, or a token that lost to the timer
			}
			r = waitExtra
		}
		r, g := lw.end(ctx, r)
		if r == waitTry {
			lw.next = time.Time{}
		}
		return r, g
	}
}

// maxOwnTurns bounds how many tries in a row the waiter's own undos
// bring forward (see takeTurn).
const maxOwnTurns = 3

// takeTurn takes the waiter's turn, if one came, and its standby time. A
// turn that only the undo of the waiter's own try gave, from a quorum,
// means that the try had taken the key there (its replies came late, or
// were lost: TestReview3TurnedWaiterSlowTryStallsQueue, the TestReview8
// and TestReview9 tests), and the undo freed it: the waiter tries again
// at once. But nodes that echo another node's messages (replicas given as
// nodes deliver their primary's) make every undo such a turn, and each
// would bring one more try forward, with no end
// (TestReadonlyReplicasTriesCounted): so at most maxOwnTurns in a row do;
// run is how many tries in a row own turns brought before this wait
// (lockWait.owns as await found it), and a try that anything else brings,
// or that an own turn brings while a standby time waits or a back-off or
// a renewal is due (due), ends the run (the TestReview11 tests). After that the retry delay, a
// standby time, or another owner's turn does.
func (lw *lockWait) takeTurn(run int, due bool) (turned bool, standby time.Time) {
	turned, own, standby := lw.w.take()
	switch {
	case !turned || !own:
	case due || !standby.IsZero():
		// The try also serves another wake-up (a standby time that
		// another owner's release set, a back-off after a split vote,
		// a renewal that is due): it ends the run (the TestReview12 and
		// TestReview13 tests).
	case run < maxOwnTurns:
		lw.owns = run + 1
	default:
		turned = false
	}
	return turned, standby
}

// renewDue reports whether renew, the time of a waiter's entry renewal
// (lockWait.renew), is set and has come.
func renewDue(renew time.Time) bool {
	return !renew.IsZero() && !time.Now().Before(renew)
}

// granted reports whether a holder of this Redsync is handing the waiter
// the lock.
func (lw *lockWait) granted() bool {
	lw.w.n.mu.Lock()
	defer lw.w.n.mu.Unlock()
	return lw.w.grant != nil
}

// end ends a wait that ended with r, and is the one place that deals with
// a hand-off that came meanwhile: it takes the waiter out of its key's
// waiters and returns the grant, or gives it back when ctx ended.
func (lw *lockWait) end(ctx context.Context, r waitResult) (waitResult, *grant) {
	g, claimed := lw.w.stopWaiting()
	if claimed {
		// A holder's hand-off is another owner's wake-up: it ends the
		// run of tries that own turns brought (see takeTurn;
		// TestReview14FailedHandOffWithOwnTurnKeepsRun).
		lw.owns = 0
	}
	switch {
	case g != nil && r == waitDone:
		lw.m.refuseGrant(g) // handed over as ctx ended: give it back
		return waitDone, nil
	case g != nil:
		// The hand-off took the waiter out of the queue of every node it
		// reached; a node it missed drops the entry when its life ends.
		lw.clean = true
		return waitGranted, g
	}
	return r, nil
}

// startTimer makes the wait's timer fire after d.
func (lw *lockWait) startTimer(d time.Duration) {
	if lw.timer == nil {
		lw.timer = time.NewTimer(d)
		return
	}
	lw.timer.Reset(d)
}

// listens reports whether a Lock of m that has to wait registers as a
// waiter (for turns, and for a local hand-off): with notification on,
// unless m has several names (see NewMultiMutex) or a kind (see
// lockKind).
func (m *Mutex) listens() bool {
	return m.notify != nil && !m.noNotify && m.names == nil && m.kind == nil
}

// queues reports whether a waiting Lock of m may join the nodes' queues:
// not with fencing or a restart guard, whose tries run scripts of their
// own (they poll).
func (m *Mutex) queues() bool {
	return m.listens() && !m.fence.on && !m.guard.on && m.notify.listens()
}

// entryLife is how long m's entries in the queues live unless renewed.
func (m *Mutex) entryLife() time.Duration {
	return max(m.expiry, minEntryLife)
}

// tryStarts notes the start of a try. Another owner's wake-up that came
// since the wait ended, or a renewal that came due, is served by the
// try, and ends the run of tries that own turns brought (see takeTurn;
// the TestReview13 tests, TestReview15RenewalDueBeforeTryKeepsRun).
func (lw *lockWait) tryStarts() {
	if lw.w.tryStarts() || renewDue(lw.renew) {
		lw.owns = 0
	}
}

// prepare makes calls, the calls of a try of a waiter that may join the
// queue, run the queue scripts: queue_acquire.lua for the try, and
// queue_leave.lua for its undo.
func (lw *lockWait) prepare(m *Mutex, calls *lockCalls) {
	w := lw.w
	if w == nil || !m.queues() {
		return
	}
	w.n.mu.Lock()
	hears := w.n.hears()
	fresh := "0"
	if !w.standing.mayHaveEntries() {
		fresh = "1" // no entry of the waiter to replace
	}
	if hears {
		w.standing = listed
	}
	w.n.mu.Unlock()
	if !hears {
		lw.renewAt(time.Time{})
		return // a turn would go unheard: poll
	}
	life := m.entryLife()
	lifeArg := strconv.FormatInt(life.Milliseconds(), 10)
	calls.acquire = redis.NewScriptCall(queueAcquireScript, m.keyArg, m.queueKeyArg, calls.value, m.ttlArg, w.member, w.ticketArg, lifeArg, fresh)
	calls.setNX = nil
	calls.undo = redis.NewScriptCall(queueLeaveScript, m.keyArg, m.queueKeyArg, "undo", calls.value, w.member, w.ticketArg, lifeArg, "1")
	calls.queue = &queueTry{
		quietUndo: redis.NewScriptCall(queueLeaveScript, m.keyArg, m.queueKeyArg, "undo", calls.value, w.member, w.ticketArg, lifeArg, "0"),
		member:    w.member,
		ticket:    w.ticketArg,
	}
	// The Unlock of an acquisition made by this try takes the waiter's
	// entries out of the queues where the try failed (see lockWait.close).
	calls.release = redis.NewScriptCall(releaseNotifyScript, m.keyArg, m.queueKeyArg, calls.value, w.member, w.ticketArg)
	sum := sha1.Sum([]byte(calls.value.(string)))
	w.n.mu.Lock()
	w.tries[0], w.tries[1] = hex.EncodeToString(sum[:]), w.tries[0]
	w.n.mu.Unlock()
	lw.renewAt(time.Now().Add(life / 2))
}

// renewAt sets, for a try that is starting, when the waiter's entries are
// next due for renewal (zero: never). A renewal that had come due is
// served by this try, which ends the run of tries that own turns brought
// (see takeTurn; TestReview17RenewalDueInTryBeforePrepareKeepsRun).
func (lw *lockWait) renewAt(at time.Time) {
	if renewDue(lw.renew) {
		lw.owns = 0
	}
	lw.renew = at
}

// begin makes a Lock call that may wait (tries > 1) a waiter before its
// first try when other Lock calls of its Redsync waited lately: the
// listening connections are still up and a quorum hears. Its first try
// then joins the queue where the lock is held, instead of a plain try
// that fails and a second one that joins. Otherwise (the common,
// uncontended case) the first try is a plain one.
//
// It returns the number of the first try to make: 1 when the call skips
// its first try and stands behind (see standing), because a listed waiter
// of its Redsync already waits for the lock. That waiter is ahead in the queues of the nodes for the whole
// process: a release wakes it, and it takes the lock (or is handed it)
// before this call could, which the local hand-off then passes on (the
// lock is held, and a try would only cost a round to join the queues).
// The call waits with no entry on the nodes, as long as a listed waiter
// of its Redsync is left: when the last one ends or lapses, cover makes
// the last waiter standing behind try at once, which lists it. Waiters that poll
// (fencing, a restart guard) are never listed, so nobody stands behind
// them. The skipped try counts: the counted tries keep their schedule.
func (lw *lockWait) begin(m *Mutex, tries int) int {
	if tries < 2 || !m.queues() || !m.notify.hears() {
		return 0
	}
	lw.w = m.notify.watchBehind(m)
	if lw.w.standing == behind {
		return 1
	}
	return 0
}

// tried notes the outcome of a failed try, whose error is err: whether it
// was a split vote, and whether a listed waiter lapsed. A queue try that
// found the lock held on a quorum, or split the vote, left the waiter in
// the queues where it ran (its undo puts it back where it took the key);
// one that node errors kept from a quorum may have left it in none, and a
// waiter standing behind it then tries (cover).
func (lw *lockWait) tried(err error, split bool) {
	lw.split = split
	w := lw.w
	if w == nil || w.standing != listed || split || !errors.As(err, new(*RedisError)) {
		return
	}
	w.n.mu.Lock()
	defer w.n.mu.Unlock()
	w.standing = lapsed
	w.kw.cover()
}

// failed runs after a failed try that will be followed by another: the
// first one makes the Lock call a waiter, which joins the queue with a try
// at once when its Redsync hears turns.
// follow records ctx, the Lock call's, with its waiter (see waiter.done).
func (lw *lockWait) follow(ctx context.Context) {
	if lw.w == nil {
		return
	}
	lw.w.n.mu.Lock()
	lw.w.done = ctx.Done()
	lw.w.n.mu.Unlock()
}

// ended reports whether the Lock call of w has ended its ctx.
func (w *waiter) ended() bool {
	w.n.mu.Lock()
	done := w.done
	w.n.mu.Unlock()
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (lw *lockWait) failed(m *Mutex) {
	if lw.w != nil || !m.listens() {
		return
	}
	lw.w = m.notify.watch(m)
	if m.queues() {
		m.notify.mu.Lock()
		lw.join = m.notify.hears()
		m.notify.mu.Unlock()
	}
}

// acquired notes that the Lock call took the lock by a try, whose calls
// are calls. It waits for nothing: a round before Lock returns would eat
// into the validity (a slow node holds it up to the per-node timeout).
// When that try was a queue try (prepare), the entries it left where it
// failed go with the acquisition's Unlock or local hand-off, which get
// the waiter's member and ticket, or with their life. When it was a plain
// try (the Redsync no longer heard a quorum) of a waiter that may have
// joined the queues before, nothing of the acquisition knows the entries:
// they are withdrawn in the background, at once.
func (lw *lockWait) acquired(calls *lockCalls) {
	if lw.w != nil && lw.w.standing.mayHaveEntries() && calls.queue == nil {
		lw.withdraw(context.Background(), true)
	}
	lw.clean = true
}

// withdraw takes the waiter out of every node's queue; in the background
// when async is set (the Lock call does not wait for it).
func (lw *lockWait) withdraw(ctx context.Context, async bool) {
	m, w := lw.m, lw.w
	call := redis.NewScriptCall(queueLeaveScript, m.keyArg, m.queueKeyArg, "withdraw", "", w.member, w.ticketArg, "0")
	send := func() {
		m.nodes.broadcast(context.WithoutCancel(ctx), m.nodeTimeout(), m.failFast, nodeOp{call: &call})
	}
	if async {
		go send()
		return
	}
	send()
}

// retryDelay returns the wait before the next counted try: d from the
// DelayFunc, or, for a waiter, a short random back-off after a split vote
// (the lock was held by no owner on a quorum: it changes hands now, or
// nobody got it, and no turn may come).
func (lw *lockWait) retryDelay(d time.Duration) time.Duration {
	if b := lw.splitBackoff(); b > 0 {
		return min(d, b)
	}
	return d
}

// splitBackoff returns, after a split vote, a short random back-off (0-1
// ms, the limit doubling with each split vote in a row up to 16 ms) when
// the Lock call is a waiter of a listening Redsync; otherwise 0.
func (lw *lockWait) splitBackoff() time.Duration {
	if lw.w == nil || !lw.w.n.listens() || !lw.split {
		lw.splits = 0
		return 0
	}
	lw.splits++
	return 1 + mathrand.N(time.Millisecond<<min(lw.splits-1, 4))
}

// close unregisters the waiter and stops the timer. A waiter that gave up
// (ctx ended, tries used up, a permanent error) and may have left entries
// in the nodes' queues withdraws them before the Lock call returns (even when ctx has ended, with the
// per-node timeout), so that a Lock that gave up leaves nothing on the
// nodes. One that took the lock withdraws nothing here (see acquired; a
// local hand-off takes the waiter out of the queues itself).
func (lw *lockWait) close(ctx context.Context) {
	if lw.w == nil {
		return
	}
	lw.w.close()
	if lw.timer != nil {
		lw.timer.Stop()
	}
	if lw.w.standing.mayHaveEntries() && !lw.clean {
		lw.withdraw(ctx, false)
	}
}
