package redsync

import (
	"fmt"
	"testing"
	"time"
)

// review11Interleaved: own turns from a quorum (each the undo of a try
// that took the key on a quorum and whose replies were lost: the lock is
// free) alternate with tries that another owner's release brought
// forward by a standby (wake). No two tries in a row come from own
// turns, yet the fourth own turn was dropped: lockWait.owns was reset only
// by another owner's turn from a quorum, not by the other wake-ups that
// brought the tries in between, and the waiter slept its retry delay
// with the lock free on a quorum. (At 4098481; now await starts each
// wait with the run ended unless an own turn continues it.)
func review11Interleaved(t *testing.T, wake func(send func(kind, id string, from ...int), round int), how string) {
	lw, send, own := ownTurnFixture(t)
	for round := range maxOwnTurns + 1 {
		id := own(round)
		send("turn", id, 0, 1)
		awaitTry(t, lw, 2*time.Second, fmt.Sprintf("round %d: own turn from a quorum (the undo freed the key on a quorum), after %d tries woken by %s", round+1, round, how))
		lw.tryStarts()
		if round == maxOwnTurns {
			return
		}
		wake(send, round)
		awaitTry(t, lw, 2*time.Second, fmt.Sprintf("round %d: %s", round+1, how))
		lw.tryStarts()
	}
}

// TestReview11NextStandbyDoesNotEndOwnRun: the tries between own turns
// come from 'next' messages of other owners' releases (the head's
// process did not hear its turn), from a quorum.
func TestReview11NextStandbyDoesNotEndOwnRun(t *testing.T) {
	review11Interleaved(t, func(send func(kind, id string, from ...int), round int) {
		send("next", fmt.Sprintf("release-of-another-owner-%d 1", round), 0, 1)
	}, "another owner's release naming the waiter next from a quorum")
}

// TestReview11MinorityTurnDoesNotEndOwnRun: the tries between own turns
// come from other owners' releases that turned the waiter from one node
// (the nodes' queues came apart: the documented standby wait).
func TestReview11MinorityTurnDoesNotEndOwnRun(t *testing.T) {
	review11Interleaved(t, func(send func(kind, id string, from ...int), round int) {
		send("turn", fmt.Sprintf("release-of-another-owner-%d", round), 2)
	}, "another owner's release turning the waiter from one node")
}
