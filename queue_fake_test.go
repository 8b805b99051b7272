package redsync

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// The fake nodes' version of the queue of waiters (queue_acquire.lua,
// queue_leave.lua, release_notify.lua): the same rules on the node's map,
// with the fake clock for the entries' lives.

// fakeEntry is a waiter in a fake node's queue.
type fakeEntry struct {
	member string
	ticket int64
	until  time.Time // end of its life
}

// fakeNow is the node's clock: the fake clock, or the wall clock.
func (n *fakeNode) fakeNow() time.Time {
	if n.clock != nil {
		return n.clock.Now()
	}
	return time.Now()
}

// leaveQueue removes member's entry from key's queue. The caller holds
// n.mu.
func (n *fakeNode) leaveQueue(key, member string) {
	if n.queues == nil {
		return
	}
	n.queues[key] = slices.DeleteFunc(n.queues[key], func(e fakeEntry) bool { return e.member == member })
}

// joinQueue adds (or renews) member's entry, ordered by ticket then
// member, as in the sorted set. The caller holds n.mu.
func (n *fakeNode) joinQueue(key, member string, ticket int64, life time.Duration) {
	if n.queues == nil {
		n.queues = map[string][]fakeEntry{}
	}
	n.leaveQueue(key, member)
	q := n.queues[key]
	e := fakeEntry{member: member, ticket: ticket, until: n.fakeNow().Add(life)}
	i, _ := slices.BinarySearchFunc(q, e, func(a, b fakeEntry) int {
		switch {
		case a.ticket != b.ticket:
			return int(a.ticket - b.ticket)
		}
		return strings.Compare(a.member, b.member)
	})
	n.queues[key] = slices.Insert(q, i, e)
}

// queued returns the members in key's queue on the node, in order.
func (n *fakeNode) queued(key string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var members []string
	for _, e := range n.queues[key] {
		members = append(members, e.member)
	}
	return members
}

// fakeStandbys is how many waiters after the head that hear it a release
// names standbys, with their ranks, when the head's Redsync does not
// listen on the node, as release_notify.lua does.
const fakeStandbys = 2

// fakeMaxTold bounds the messages of one wake-up, as wake's maxTold does.
const fakeMaxTold = 8

// wakeFirst returns the messages that wake key's queue, as
// release_notify.lua's wake does: the first live waiter's turn and, when
// its Redsync does not listen on the node, the next ones' standby ranks
// (of other Redsyncs); or the release announcement when nobody waits.
// With pop, the first leaves the queue. The caller holds n.mu.
func (n *fakeNode) wakeFirst(key, id string, pop bool) (msgs []redis.Message) {
	now := n.fakeNow()
	var picked []string
	seen := map[string]bool{}
	q := n.queues[key]
	first := -1
	heard := 0
	for i := 0; i < len(q) && heard < fakeStandbys && len(picked) < fakeMaxTold; {
		if !q[i].until.After(now) {
			q = slices.Delete(q, i, i+1)
			continue
		}
		process, _, _ := strings.Cut(q[i].member, ":")
		if !seen[process] {
			seen[process] = true
			picked = append(picked, q[i].member)
			listens := n.listening(wakeChannelPrefix + process)
			if first < 0 {
				first = i
				if listens {
					break // heard: no standbys
				}
			} else if listens {
				heard++
			}
		}
		i++
	}
	if pop && first >= 0 {
		q = slices.Delete(q, first, first+1)
	}
	if len(q) > 0 || n.queues[key] != nil {
		n.queues[key] = q
	}
	if len(picked) == 0 {
		return []redis.Message{{Channel: releaseChannel(key), Payload: id}}
	}
	msgs = append(msgs, fakeWake("turn", picked[0], id))
	rank := 1
	for _, member := range picked[1:] {
		msgs = append(msgs, fakeWake("next", member, id+" "+strconv.Itoa(rank)))
		process, _, _ := strings.Cut(member, ":")
		if n.listening(wakeChannelPrefix + process) {
			rank++ // a standby that hears it; one that does not names none
		}
	}
	return msgs
}

// listening reports whether a listener on the node is subscribed to
// channel (PUBLISH would reach it). The caller holds n.mu.
func (n *fakeNode) listening(channel string) bool {
	for _, s := range n.subs {
		if l := s.listener(); l != nil && l.subscribed(channel) {
			return true
		}
	}
	return false
}

func fakeWake(kind, member, id string) redis.Message {
	redsyncID, _, _ := strings.Cut(member, ":")
	return redis.Message{Channel: wakeChannelPrefix + redsyncID, Payload: kind + " " + member + " " + id}
}

// publish delivers msgs to the listeners subscribed to their channels.
// The caller does not hold n.mu.
func (n *fakeNode) publish(msgs []redis.Message) {
	n.mu.Lock()
	subs := slices.Clone(n.subs)
	n.mu.Unlock()
	for _, msg := range msgs {
		for _, s := range subs {
			if l := s.listener(); l != nil && l.subscribed(msg.Channel) {
				l.receive(msg)
			}
		}
	}
}

// evalReleaseNotify runs release_notify.lua's logic.
func (c *fakeConn) evalReleaseNotify(keysAndArgs []any) (any, error) {
	n := c.node
	if err := n.enter(c.ctx, "release"); err != nil {
		return nil, err
	}
	key, value := keysAndArgs[0].(string), keysAndArgs[1].(string)
	if value == "" {
		return nil, errors.New("fake: empty value on the wire")
	}
	n.mu.Lock()
	if len(keysAndArgs) > 3 {
		n.leaveQueue(key, keysAndArgs[2].(string))
	}
	current, ok := n.keys[key]
	switch {
	case !ok:
		n.mu.Unlock()
		return replyMissing, nil
	case current != value:
		n.mu.Unlock()
		return replyTaken, nil
	}
	delete(n.keys, key)
	msgs := n.wakeFirst(key, value, true)
	n.mu.Unlock()
	n.publish(msgs)
	return replyDone, nil
}

// evalQueue runs queue_acquire.lua's and queue_leave.lua's logic.
func (c *fakeConn) evalQueue(script *redis.Script, keysAndArgs []any) (any, error) {
	n := c.node
	arg := func(i int) string { return keysAndArgs[i].(string) }
	name := "queue-acquire"
	if script == queueLeaveScript {
		name = "queue-" + arg(1)
	}
	if err := n.enter(c.ctx, name); err != nil {
		return nil, err
	}
	n.mu.Lock()
	key := arg(0)
	current, held := n.keys[key]
	var reply int64
	var msgs []redis.Message
	if script == queueAcquireScript {
		value, member := arg(1), arg(3)
		ticket, _ := strconv.ParseInt(arg(4), 10, 64)
		life, _ := strconv.Atoi(arg(5))
		switch {
		case !held || current == value:
			n.keys[key] = value
			n.leaveQueue(key, member)
			reply = replyDone
		default:
			n.joinQueue(key, member, ticket, time.Duration(life)*time.Millisecond)
			reply = fakeHolder(current)
		}
	} else {
		mode, value, member := arg(1), arg(2), arg(3)
		switch {
		case mode == "undo" && !held:
			reply = replyMissing
		case mode == "undo" && current != value:
			reply = replyTaken
		case mode == "undo":
			ticket, _ := strconv.ParseInt(arg(4), 10, 64)
			life, _ := strconv.Atoi(arg(5))
			delete(n.keys, key)
			n.joinQueue(key, member, ticket, time.Duration(life)*time.Millisecond)
			if len(n.queues[key]) > 0 && len(keysAndArgs) > 6 && arg(6) == "1" {
				msgs = n.wakeFirst(key, value, false)
			}
			reply = replyDone
		default: // withdraw
			n.leaveQueue(key, member)
			if _, held := n.keys[key]; !held && len(n.queues[key]) > 0 {
				msgs = n.wakeFirst(key, "withdraw:"+member, false)
			}
		}
	}
	n.mu.Unlock()
	n.publish(msgs)
	return reply, nil
}

// subscribed reports whether the listener is subscribed to channel.
func (l *fakeListener) subscribed(channel string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.channels[channel] && !l.closed
}

// tries counts the acquire scripts the node ran, plain or queued.
func (n *fakeNode) tries() int {
	k := 0
	for _, s := range n.ran() {
		if s == "acquire" || s == "queue-acquire" {
			k++
		}
	}
	return k
}
