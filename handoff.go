package redsync

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// Hand-off by notification.
//
// Unlock runs release_notify.lua, which PUBLISHes on releaseChannel(key),
// on each node where it deleted the key, the SHA1 of the released value,
// and then, when more than one client received it, "<SHA1> <receivers>"
// (see lockWait.spreadDelay); the process that takes the lock after such a
// release publishes "<SHA1> claimed" (claim.lua, lockWait.claim).
// (The undo of a failed try runs it too; it deletes the key on fewer nodes
// than a quorum, so its announcements never wake anyone.)
// A Lock call whose first try failed becomes a waiter: it registers with
// the Redsync's notifier, which listens on the channel on every node
// (one listening connection per node, shared by all channels and waiters).
// When messages with the same SHA1 came from a quorum of nodes, the lock is
// free on a quorum, and the notifier wakes the waiter that has waited
// longest (one per release, so that waiters do not all rush at once); the
// others wait for the next release. The retry delay stays as a fallback for
// messages that never come (a release by expiry, a node whose connection
// failed, a client that does not publish).

// releaseChannelPrefix starts the channel on which releases of a key are
// announced; release_notify.lua builds the same name.
const releaseChannelPrefix = "redsync:released:"

// claimSuffix ends the message of claim.lua: "<SHA1> claimed".
const claimSuffix = "claimed"

// releaseChannel is the channel on which releases of key are announced.
func releaseChannel(key string) string {
	return releaseChannelPrefix + key
}

// Timing of the listening connections.
const (
	listenTimeout  = time.Second            // bounds dialling and each subscribe command
	listenBackoff  = 100 * time.Millisecond // first wait before reconnecting a failed node
	listenMaxDelay = 5 * time.Second        // longest wait before reconnecting

	// releaseMemory is how many recent releases per channel are remembered
	// to group their messages from the nodes.
	releaseMemory = 16
)

// notifier delivers release announcements to waiting Lock calls. It is
// part of a Redsync and shared by all its mutexes; it starts a goroutine
// per node (and the adapter starts its reader) only while some Lock waits,
// and ends them when none does.
type notifier struct {
	quorum int
	nodes  []*listenNode // one per pool that is a redis.Subscriber

	watched atomic.Int32 // len(channels), read without the lock

	mu       sync.Mutex
	channels map[string]*channelWait // by lock name (key); present while watched
	tickets  uint64                  // last ticket handed to a waiter
}

// newNotifier returns the notifier of a Redsync over pools. When too few
// of them can subscribe for a quorum of announcements ever to arrive, it
// listens to none: its waiters are only polled, or handed the lock by an
// Unlock of the same Redsync (transfer.go).
func newNotifier(pools []redis.Pool) *notifier {
	n := &notifier{quorum: len(pools)/2 + 1, channels: map[string]*channelWait{}}
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

// listens reports whether the notifier listens for release announcements.
func (n *notifier) listens() bool {
	return len(n.nodes) > 0
}

// channelWait is the state of one watched channel.
type channelWait struct {
	key       string    // the lock name
	name      string    // the channel
	refs      int       // registered waiters
	queue     []*waiter // waiters waiting now, by ticket
	confirmed []bool    // by node slot: the subscription is confirmed
	nconfirm  int
	releases  []releaseSeen // recent releases, oldest first
	// pending is when a release was seen (or may have been missed) that no
	// waiter took: the next waiter whose try started before it wakes at
	// once, spread as if the release had woken it (pendingID and
	// pendingListeners are wakeOne's id and listeners).
	pending          time.Time
	pendingID        string
	pendingListeners int
	// fired is when a quorum last announced a release.
	fired time.Time
	// spreading are the waiters woken with a spread that have not tried
	// yet (see waiter.wokenBy).
	spreading []*waiter
}

// releaseSeen gathers the messages of one release from the nodes.
type releaseSeen struct {
	id        string // the SHA1 of the released value
	nodes     []bool // by node slot: announced
	count     int
	fired     bool // a quorum announced it and a waiter was woken
	listeners int  // the most listeners a node reported
}

// waiter is one Lock call waiting for a release. Its methods are nil-safe:
// a nil waiter (no notification) waits for nothing.
type waiter struct {
	n      *notifier
	m      *Mutex // the Mutex whose Lock call waits
	ch     *channelWait
	ticket uint64
	wake   chan struct{} // one token: retry now
	queued bool
	since  time.Time // start of the try before the current wait
	// behind is set by stopWaiting when the wait ended by the timer while
	// the queue was moving: releases came, and went to waiters ahead.
	behind bool
	// grant is set when a holder of this Redsync took the waiter out of
	// the queue to hand it the lock directly (transfer.go).
	grant *grant
	// spread, set when a release announcement woke the waiter, is how
	// many try durations to wait before its try: a random share of the
	// other processes listening (see lockWait.spreadDelay).
	spread float64
	// wokenBy is the release (its SHA1) that woke the waiter with a
	// spread; while the waiter waits it out (spreading), a claim of that
	// release by another process signals claimed.
	wokenBy   string
	spreading bool
	claimed   chan struct{} // one token
}

// watch registers a waiter for the releases of key and makes sure every
// node listens on its channel.
func (n *notifier) watch(m *Mutex) *waiter {
	key := m.name
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := n.channels[key]
	if ch == nil {
		ch = &channelWait{key: key, name: releaseChannel(key)}
		ch.confirmed = make([]bool, len(n.nodes))
		n.channels[key] = ch
		n.watched.Store(int32(len(n.channels)))
		n.kickAll()
	}
	ch.refs++
	n.tickets++
	return &waiter{n: n, m: m, ch: ch, ticket: n.tickets, wake: make(chan struct{}, 1), claimed: make(chan struct{}, 1)}
}

// wait queues w and returns the channel on which it is woken: when a
// release of the key was announced by a quorum after since (the start of
// the try that failed), or when it may have been missed.
func (w *waiter) wait(since time.Time) <-chan struct{} {
	if w == nil {
		return nil
	}
	n, ch := w.n, w.ch
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-w.wake: // a wake-up that lost the race to the timer
	default:
	}
	if !ch.pending.IsZero() && ch.pending.After(since) {
		ch.pending = time.Time{}
		ch.woken(w, ch.pendingID, ch.pendingListeners)
		return w.wake
	}
	i, _ := slices.BinarySearchFunc(ch.queue, w.ticket, func(q *waiter, t uint64) int {
		switch {
		case q.ticket < t:
			return -1
		case q.ticket > t:
			return 1
		}
		return 0
	})
	ch.queue = slices.Insert(ch.queue, i, w)
	w.queued, w.since = true, since
	return w.wake
}

// stopWaiting ends the wait of w: it takes w out of the queue (when the
// timer or the context won) and, when a holder took w out to hand it the
// lock directly, waits for that hand-off to end and returns it if the lock
// is now w's. When a release announcement woke w with a spread, it also
// returns that release and w's share of the spread (see lockWait.end),
// once: a later wake-up starts afresh.
func (w *waiter) stopWaiting() (g *grant, wokenBy string, spread float64) {
	if w == nil {
		return nil, "", 0
	}
	w.n.mu.Lock()
	ch := w.ch
	w.behind = w.queued && ch.queue[0] != w && ch.fired.After(w.since) && ch.nconfirm >= w.n.quorum
	w.unqueue()
	g, w.grant = w.grant, nil
	if w.spreading {
		wokenBy = w.wokenBy
	}
	spread, w.spread = w.spread, 0
	w.n.mu.Unlock()
	if g == nil {
		return nil, wokenBy, spread
	}
	<-g.done
	if !g.ok {
		return nil, wokenBy, spread
	}
	return g, wokenBy, spread
}

// unqueue removes w from its channel's queue. The caller holds n.mu.
func (w *waiter) unqueue() {
	if !w.queued {
		return
	}
	w.queued = false
	w.ch.queue = without(w.ch.queue, w)
}

// close unregisters w; the last waiter of a channel makes the nodes stop
// listening on it.
func (w *waiter) close() {
	if w == nil {
		return
	}
	n := w.n
	n.mu.Lock()
	defer n.mu.Unlock()
	w.unqueue()
	w.endSpread()
	w.ch.refs--
	if w.ch.refs == 0 && n.channels[w.ch.key] == w.ch {
		delete(n.channels, w.ch.key)
		n.watched.Store(int32(len(n.channels)))
		n.kickAll()
	}
}

// wakeOne wakes the waiter that has waited longest, or, when none is
// waiting now, remembers the release for the next one. listeners is how
// many processes (Redsyncs) listened for the release, this one included
// (0 when unknown): each of them wakes a waiter of its own, and the woken
// waiters spread their tries over about as many try durations, so that
// one of them tries first and takes the lock instead of all splitting the
// vote. The caller holds n.mu.
func (ch *channelWait) wakeOne(at time.Time, id string, listeners int) {
	if len(ch.queue) == 0 {
		ch.pending, ch.pendingID, ch.pendingListeners = at, id, listeners
		return
	}
	w := ch.queue[0]
	ch.queue = slices.Delete(ch.queue, 0, 1)
	w.queued = false
	ch.woken(w, id, listeners)
}

// woken wakes w, out of the queue, for the release id that listeners
// processes heard. The caller holds n.mu.
func (ch *channelWait) woken(w *waiter, id string, listeners int) {
	w.spread = 0
	w.endSpread()
	if listeners > 1 {
		w.spread = rand.Float64() * float64(listeners-1)
		w.wokenBy, w.spreading = id, true
		ch.spreading = append(ch.spreading, w)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// without returns ws without w.
func without(ws []*waiter, w *waiter) []*waiter {
	if i := slices.Index(ws, w); i >= 0 {
		return slices.Delete(ws, i, i+1)
	}
	return ws
}

// stopSpread is endSpread for a caller that does not hold n.mu.
func (w *waiter) stopSpread() {
	if w == nil {
		return
	}
	w.n.mu.Lock()
	w.endSpread()
	w.n.mu.Unlock()
}

// endSpread takes w out of its channel's spreading waiters and forgets a
// claim that came too late. The caller holds n.mu.
func (w *waiter) endSpread() {
	if !w.spreading {
		return
	}
	w.spreading = false
	w.ch.spreading = without(w.ch.spreading, w)
	select {
	case <-w.claimed:
	default:
	}
}

// claim signals the waiters woken by the release id, and still waiting
// out their spread, that another process took the lock: their tries would
// fail. The caller holds n.mu.
func (ch *channelWait) claim(id string) {
	ch.spreading = slices.DeleteFunc(ch.spreading, func(w *waiter) bool {
		if w.wokenBy != id {
			return false
		}
		w.spreading = false
		select {
		case w.claimed <- struct{}{}:
		default:
		}
		return true
	})
}

// announced counts node's message of the release id, which reported
// listeners, and reports whether a quorum has now announced it (once per
// release).
func (ch *channelWait) announced(node, nodes, quorum int, id string, listeners int) bool {
	i := slices.IndexFunc(ch.releases, func(r releaseSeen) bool { return r.id == id })
	if i < 0 {
		if len(ch.releases) == releaseMemory {
			ch.releases = slices.Delete(ch.releases, 0, 1)
		}
		ch.releases = append(ch.releases, releaseSeen{id: id, nodes: make([]bool, nodes)})
		i = len(ch.releases) - 1
	}
	r := &ch.releases[i]
	r.listeners = max(r.listeners, listeners)
	if r.nodes[node] {
		return false
	}
	r.nodes[node] = true
	r.count++
	if r.fired || r.count < quorum {
		return false
	}
	r.fired = true
	return true
}

// listeners returns the most listeners that the nodes reported for the
// release id.
func (ch *channelWait) listeners(id string) int {
	for _, r := range ch.releases {
		if r.id == id {
			return r.listeners
		}
	}
	return 0
}

// receive handles a message of node's listener of generation gen.
func (n *notifier) receive(ln *listenNode, gen uint64, msg redis.Message) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if gen != ln.gen {
		return // from a listener that was replaced or closed
	}
	slot := ln.slot
	switch {
	case msg.Err != nil:
		ln.broken = true
		for _, ch := range n.channels {
			if ch.confirmed[slot] {
				ch.confirmed[slot] = false
				ch.nconfirm--
			}
		}
		ln.kickLocked()
	case msg.Subscribed:
		ln.failures = 0
		ch := n.channelOf(msg.Channel)
		if ch == nil || ch.confirmed[slot] {
			return
		}
		ch.confirmed[slot] = true
		ch.nconfirm++
		if ch.nconfirm == n.quorum {
			// A quorum listens only now: a release during the set-up may
			// have gone unheard.
			ch.wakeOne(now, "", 0)
		}
	default:
		ch := n.channelOf(msg.Channel)
		if ch == nil {
			return
		}
		id, rest, _ := strings.Cut(msg.Payload, " ")
		if rest == claimSuffix {
			ch.claim(id)
			return
		}
		listeners, _ := strconv.Atoi(rest) // 0 from a client that does not send it
		if ch.announced(slot, len(n.nodes), n.quorum, id, listeners) {
			ch.fired = now
			ch.wakeOne(now, id, ch.listeners(id))
		}
	}
}

// channelOf returns the state of a watched channel, or nil. The caller
// holds n.mu.
func (n *notifier) channelOf(channel string) *channelWait {
	key, ok := strings.CutPrefix(channel, releaseChannelPrefix)
	if !ok {
		return nil
	}
	return n.channels[key]
}

// kickAll tells every node's listener to catch up with the watched
// channels, starting it if needed. The caller holds n.mu.
func (n *notifier) kickAll() {
	for _, ln := range n.nodes {
		if !ln.running && len(n.channels) > 0 {
			ln.running = true
			go ln.run()
			continue
		}
		ln.kickLocked()
	}
}

// listenNode owns the listening connection to one node: its goroutine
// (run) subscribes and unsubscribes as channels come and go, reconnects
// after failures, and ends, closing the connection, when no channel is
// watched.
type listenNode struct {
	n     *notifier
	index int // in the Redsync's pools
	slot  int // in n.nodes, for node sets
	sub   redis.Subscriber
	kick  chan struct{} // one token: look at the channels again

	// Guarded by n.mu.
	running  bool   // run is active
	gen      uint64 // generation of the current listener
	broken   bool   // the current listener reported a failure
	failures int    // failures since the last confirmed subscription
}

func (ln *listenNode) kickLocked() {
	select {
	case ln.kick <- struct{}{}:
	default:
	}
}

// run keeps the node's listener in step with the watched channels.
func (ln *listenNode) run() {
	n := ln.n
	var (
		lis redis.Listener
		// subscribed maps the channels subscribed to the watch they were
		// subscribed for: a key's watch that ends while a new one starts
		// (the last waiter leaves as another comes) has a new
		// channelWait under the same channel name, whose confirmation
		// must come from a SUBSCRIBE of its own.
		subscribed = map[string]*channelWait{}
		retryAt    time.Time
		timer      = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	for {
		n.mu.Lock()
		if ln.broken || len(n.channels) == 0 {
			// Retire the listener: late messages of it are ignored.
			ln.gen++
			old := lis
			lis = nil
			clear(subscribed)
			if ln.broken {
				ln.broken = false
				retryAt = time.Now().Add(backoff(ln.failures))
			}
			stop := len(n.channels) == 0
			if stop {
				ln.running = false
			}
			n.mu.Unlock()
			if old != nil {
				_ = old.Close()
			}
			if stop {
				return
			}
			continue
		}
		var add []*channelWait
		var remove []string
		for _, ch := range n.channels {
			if subscribed[ch.name] != ch {
				add = append(add, ch)
			}
		}
		for name := range subscribed {
			if n.channelOf(name) == nil {
				remove = append(remove, name)
			}
		}
		gen := ln.gen
		n.mu.Unlock()

		if wait := time.Until(retryAt); lis == nil && wait > 0 {
			timer.Reset(wait)
			select {
			case <-ln.kick:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}

		err := ln.apply(&lis, gen, subscribed, add, remove)
		if err != nil {
			n.mu.Lock()
			if gen == ln.gen {
				ln.broken = true
				ln.failures++
			}
			n.mu.Unlock()
			continue
		}
		<-ln.kick
	}
}

// apply opens the listener if needed, then subscribes and unsubscribes.
func (ln *listenNode) apply(lis *redis.Listener, gen uint64, subscribed map[string]*channelWait, add []*channelWait, remove []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), listenTimeout)
	defer cancel()
	if *lis == nil {
		l, err := ln.sub.Listen(ctx, func(msg redis.Message) { ln.n.receive(ln, gen, msg) })
		if err != nil {
			return err
		}
		*lis = l
	}
	if len(add) > 0 {
		names := make([]string, len(add))
		for i, ch := range add {
			names[i] = ch.name
		}
		if err := (*lis).Subscribe(ctx, names...); err != nil {
			return err
		}
		for _, ch := range add {
			subscribed[ch.name] = ch
		}
	}
	if len(remove) > 0 {
		if err := (*lis).Unsubscribe(ctx, remove...); err != nil {
			return err
		}
		for _, name := range remove {
			delete(subscribed, name)
		}
	}
	return nil
}

// backoff is the wait before reconnecting after failures failures.
func backoff(failures int) time.Duration {
	d := listenBackoff
	for range min(failures, 10) {
		d *= 2
	}
	d = min(d, listenMaxDelay)
	return d/2 + rand.N(d/2)
}

// lockWait is the wait of one Lock call between tries: the retry delay,
// cut short by a release announcement when the Mutex uses notification,
// and by a short random back-off after a try that nobody won.
type lockWait struct {
	m     *Mutex
	w     *waiter
	timer *time.Timer
	// next is when the next counted try is due (zero: not scheduled yet);
	// soon, when positive, is a short wait before an extra try.
	next    time.Time
	soon    time.Duration
	since   time.Time     // start of the last try
	lastTry time.Duration // how long the last try took
	split   bool          // the last try was a split vote (tally.split)
	splits  int           // consecutive split votes
	// claimID, during a try that a release with several listening
	// processes brought forward, is that release: a try that takes the
	// lock claims it (see claim).
	claimID string
}

// waitResult is how a wait between tries ended.
type waitResult int

const (
	waitTry     waitResult = iota // the next counted try is due
	waitExtra                     // an extra try is due: a release was announced, or a back-off ended
	waitClaimed                   // another process took the lock after the release that woke the call
	waitGranted                   // a holder of this Redsync handed the lock over
	waitDone                      // ctx ended
)

// await waits before try (counted from 0) until the next counted try is
// due, a release announcement or the back-off after a split vote brings an
// extra try forward, a holder of this Redsync hands the lock over (the
// grant is returned), or ctx ends.
func (lw *lockWait) await(ctx context.Context, try int) (waitResult, *grant) {
	now := time.Now()
	if lw.next.IsZero() {
		lw.next = now.Add(lw.delay(lw.m.delayFunc(try)))
	}
	wake := lw.next
	if lw.soon > 0 && now.Add(lw.soon).Before(wake) {
		wake = now.Add(lw.soon)
	}
	lw.soon = 0
	lw.startTimer(wake.Sub(now))
	r, woken := waitTry, false
	select {
	case <-ctx.Done():
		r = waitDone
	case <-lw.timer.C:
		if time.Now().Before(lw.next) {
			r = waitExtra
		}
	case <-lw.w.wait(lw.since):
		r, woken = waitExtra, true
	}
	r, g := lw.end(ctx, r, woken)
	if r == waitTry {
		lw.next = time.Time{}
	}
	return r, g
}

// end ends a wait that ended with r (woken: by the waiter's channel), and
// is the one place that deals with a hand-off that came meanwhile: it
// takes the waiter out of the queue and returns the grant, or gives it
// back when ctx ended.
//
// After a release announcement woke the waiter, end waits before its try
// for the waiter's random share (waiter.spread) of the other listening
// processes, each counted as one try's duration. With P processes woken by
// one release, the first try comes before the others by about a try's
// duration on average, and takes the lock alone; the others find it taken
// by one owner and wait for the next release. (Giving waiters that lost
// often a smaller share, for order, brought the herd back among them:
// 0.73x instead of 0.92x redsync v4's hand-offs/s with 16 processes.) The
// first process to take the lock then claims the release (claim.lua), and
// the others, told while they wait out their shares, go back to waiting
// without a try (waitClaimed).
func (lw *lockWait) end(ctx context.Context, r waitResult, woken bool) (waitResult, *grant) {
	g, wokenBy, spread := lw.w.stopWaiting()
	defer lw.w.stopSpread()
	switch {
	case g != nil && r == waitDone:
		lw.m.refuseGrant(g) // handed over as ctx ended: give it back
		return waitDone, nil
	case g != nil:
		return waitGranted, g
	case !woken || r == waitDone:
		return r, nil
	}
	lw.claimID = wokenBy
	d := lw.spreadDelay(spread)
	if d <= 0 {
		return r, nil
	}
	// Out of the queue, the waiter gets no hand-off while it spreads.
	lw.startTimer(d)
	select {
	case <-ctx.Done():
		return waitDone, nil
	case <-lw.timer.C:
		return r, nil
	case <-lw.w.claimed:
		// Another process took the lock after that release: wait for
		// the next one.
		lw.claimID = ""
		return waitClaimed, nil
	}
}

// spreadDelay is the wait of a share spread of the other listening
// processes, each counted as the last try's duration.
func (lw *lockWait) spreadDelay(spread float64) time.Duration {
	return time.Duration(spread * float64(lw.lastTry))
}

// startTimer makes the wait's timer fire after d.
func (lw *lockWait) startTimer(d time.Duration) {
	if lw.timer == nil {
		lw.timer = time.NewTimer(d)
		return
	}
	lw.timer.Reset(d)
}

// listens reports whether a Lock of m that has to wait listens for
// release announcements: with notification on, unless m has several names
// (see NewMultiMutex) or a kind (see lockKind).
func (m *Mutex) listens() bool {
	return m.notify != nil && !m.noNotify && m.names == nil && m.kind == nil
}

// tryStarts notes the start of a try.
func (lw *lockWait) tryStarts(m *Mutex) {
	if m.listens() {
		lw.since = time.Now()
	}
}

// failed runs after a failed try that will be followed by another: the
// first one makes the Lock call a waiter.
func (lw *lockWait) failed(m *Mutex) {
	if lw.w == nil && m.listens() {
		lw.w = m.notify.watch(m)
	}
}

// tried notes the outcome of a failed try: whether it was a split vote.
func (lw *lockWait) tried(split bool) {
	lw.split = split
	lw.claimID = ""
	if !lw.since.IsZero() {
		lw.lastTry = time.Since(lw.since)
	}
}

// claim, after a try that took the lock, tells the other processes woken
// by the same release (when several listened) that it is taken again.
// The claim is a hint sent in the background: whoever misses it tries and
// finds the lock taken.
func (lw *lockWait) claim(m *Mutex) {
	if lw.claimID == "" {
		return
	}
	call := redis.NewScriptCall(claimScript, m.keyArg, lw.claimID)
	lw.claimID = ""
	go m.nodes.broadcast(context.Background(), m.nodeTimeout(), true, nodeOp{call: &call})
}

// delay returns the wait before the next try: d from the DelayFunc, or,
// with notification, a short random back-off after a split vote (the lock
// was held by no owner on a quorum: it changes hands now, or nobody got
// it, and a release announcement may never come).
func (lw *lockWait) delay(d time.Duration) time.Duration {
	if b := lw.splitBackoff(); b > 0 {
		return min(d, b)
	}
	return d
}

// splitBackoff returns, after a split vote, a short random back-off (0-1
// ms, the limit doubling with each split vote in a row up to 16 ms) when
// the Lock call listens for releases; otherwise 0. After an extra try (brought forward by a release
// announcement), 0 means: wait for the next announcement or the next
// counted try.
func (lw *lockWait) splitBackoff() time.Duration {
	if lw.w == nil || !lw.w.n.listens() || !lw.split {
		lw.splits = 0
		return 0
	}
	lw.splits++
	return 1 + rand.N(time.Millisecond<<min(lw.splits-1, 4))
}

// close unregisters the waiter and stops the timer.
func (lw *lockWait) close() {
	lw.w.close()
	if lw.timer != nil {
		lw.timer.Stop()
	}
}

// skipTry reports whether try (of tries) would certainly fail because
// other waiters of this Redsync are ahead: the Lock call then goes on
// waiting without sending it (it still counts as a try). That is so for
// the first try when others already wait for the lock (see
// behindLocalWaiters), and for a later try when the retry delay ran out
// while releases went to waiters ahead in the queue. The last try is
// always sent.
func (lw *lockWait) skipTry(m *Mutex, try, tries int) bool {
	if try+1 >= tries {
		return false
	}
	if try == 0 {
		return lw.behindLocalWaiters(m)
	}
	if lw.w == nil || !lw.w.behind {
		return false
	}
	lw.w.behind = false
	return true
}

// behindLocalWaiters makes the Lock call a waiter at once, without a first
// try, when other Lock calls of this Redsync already wait for the same lock
// and a quorum of nodes listens for its release: the lock is held, so the
// call queues behind them instead of sending a try that would fail. This
// keeps the waiters of one process in order (FIFO) and halves the commands
// sent under contention.
func (lw *lockWait) behindLocalWaiters(m *Mutex) bool {
	if !m.listens() {
		return false
	}
	n := m.notify
	if n.watched.Load() == 0 {
		return false
	}
	n.mu.Lock()
	ch := n.channels[m.name]
	queued := ch != nil && len(ch.queue) > 0 && ch.nconfirm >= n.quorum
	n.mu.Unlock()
	if queued {
		lw.w = n.watch(m)
	}
	return queued
}
