package redsync

import (
	"testing"
	"time"
)

// review12SwallowedStandby: two tries in a row come from own turns (each
// the undo of a try that took the key on a quorum and whose replies were
// lost: documented, up to maxOwnTurns in a row). During the third try,
// another owner's release gives the waiter a standby time (foreign), and
// the try lasts past it: when the wait after the try begins, the standby
// is already due, and the try that follows is the one it asked for. The
// undo of the third try gives an own turn from a quorum too. At 18e5bd6
// takeTurn, which looks at the turn first, counted that try as the third
// own one in a row: the standby's wake-up did not end the run, as it does
// when it fires alone (TestReview11NextStandbyDoesNotEndOwnRun,
// TestReview11MinorityTurnDoesNotEndOwnRun), the fourth own turn was
// dropped, and the waiter slept its retry delay (1 h) with the lock free
// on a quorum. Now an own turn that comes while a standby time waits ends
// the run, whatever the timing.
func review12SwallowedStandby(t *testing.T, foreign func(send func(kind, id string, from ...int)), how string) {
	lw, send, own := ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	// The third try: the foreign wake-up comes during it, the try lasts
	// past the standby time, and its undo's own turn comes from a quorum.
	foreign(send)
	time.Sleep(standbyWait + 50*time.Millisecond)
	send("turn", own(maxOwnTurns-1), 0, 1)
	awaitTry(t, lw, 2*time.Second, "a due standby ("+how+") and an own turn from a quorum")
	lw.tryStarts()
	// The fourth try's undo freed the key on a quorum.
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try that a due standby ("+how+") brought")
}

// TestReview12DueNextStandbyCountedAsOwnTurn: the standby comes from a
// 'next' of another owner's release, from a quorum.
func TestReview12DueNextStandbyCountedAsOwnTurn(t *testing.T) {
	review12SwallowedStandby(t, func(send func(kind, id string, from ...int)) {
		send("next", "release-of-another-owner 1", 0, 1)
	}, "another owner's release named the waiter next from a quorum")
}

// TestReview12DueMinorityTurnCountedAsOwnTurn: the standby comes from
// another owner's release that turned the waiter from one node (the
// nodes' queues came apart).
func TestReview12DueMinorityTurnCountedAsOwnTurn(t *testing.T) {
	review12SwallowedStandby(t, func(send func(kind, id string, from ...int)) {
		send("turn", "release-of-another-owner", 2)
	}, "another owner's release turned the waiter from one node")
}
