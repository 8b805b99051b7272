package redsync

import (
	"testing"
	"time"
)

// review18Run brings maxOwnTurns tries in a row forward with own turns
// from a quorum (ownTurnFixture: each the undo of a try that took the key
// on a quorum and whose replies were lost; documented, up to maxOwnTurns
// in a row), and starts the third of those tries. Nothing is wrong so
// far.
func review18Run(t *testing.T) (lw *lockWait, send func(kind, id string, from ...int), own func(i int) string) {
	t.Helper()
	lw, send, own = ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns)
	return lw, send, own
}

// TestReview18ForeignNextWithOwnTurnDropped: another owner's release
// names the waiter next from one node (node 0; node 1's message is lost
// or comes later) during the third own-turn try, and the own turn of that
// try's undo comes from a quorum in the wait after it. The try that own
// turn asks for would serve the other owner's 'next' (lockWait.tryStarts
// reports a 'next' from some nodes as another owner's wake-up, and ends
// the run: TestReview16NextSplitByTryKeepsRun), so it is not a fourth try
// "in a row" that only own undos brought. At 835c8b2 takeTurn looked at
// the turn, a standby time, a back-off and a renewal only: it dropped the
// own turn as the fourth in a row, and the waiter slept its retry delay
// (1 h) with the lock free on a quorum (the undo freed it there), the
// other owner's 'next' unserved (at b58ee6a every own turn from a quorum
// brought a try). Now waiter.take counts such a turn as not only own.
func TestReview18ForeignNextWithOwnTurnDropped(t *testing.T) {
	lw, send, own := review18Run(t)
	send("next", "release-of-another-owner 1", 0) // during the third try
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum with another owner's 'next' from one node heard in the run")
}

// TestReview18ForeignNextInWaitWithOwnTurnDropped: the same, with the
// other owner's 'next' from node 0 coming in the wait, together with the
// own turn ("also when that arrives together with the own turn").
func TestReview18ForeignNextInWaitWithOwnTurnDropped(t *testing.T) {
	lw, send, own := review18Run(t)
	go func() {
		time.Sleep(20 * time.Millisecond) // the wait has begun
		send("next", "release-of-another-owner 1", 0)
		send("turn", own(maxOwnTurns), 0, 1)
	}()
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum together with another owner's 'next' from one node")
}
