package redsync

import (
	"fmt"
	"testing"
	"time"
)

// review13Run brings maxOwnTurns-1 tries in a row forward with own turns
// from a quorum (ownTurnFixture, handoff_test.go: each the undo of a try
// that took the key on a quorum and whose replies were lost; documented,
// up to maxOwnTurns in a row), and sends the own turn of the third try's
// undo. Nothing is wrong so far.
func review13Run(t *testing.T) (lw *lockWait, send func(kind, id string, from ...int), own func(i int) string) {
	t.Helper()
	lw, send, own = ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	send("turn", own(maxOwnTurns-1), 0, 1)
	return lw, send, own
}

// review13WakeBeforeTry: the own turn of the second try's undo ends the
// wait with the third try (the third own one in a row), and another
// owner's release wakes the waiter after that wait ended but before the
// try started (tryStarts: "the try uses them"), so the try serves that
// wake-up too. Had it come a moment earlier, during the wait, takeTurn
// would have seen it and the try would have ended the run (the
// TestReview11 and TestReview12 tests); coming now, at d8e11c8 it was
// wiped by tryStarts and the run went on: the undo of the third try
// freed the key on a quorum again (its replies were lost, as before), its
// own turn was the "fourth in a row" and was dropped, and the waiter, the
// head that the other owner's release woke, slept its retry delay (1 h)
// with the lock free on a quorum. Now tryStarts reports the wake-up it
// wipes, which ends the run.
func review13WakeBeforeTry(t *testing.T, foreign func(send func(kind, id string, from ...int)), how string) {
	lw, send, own := review13Run(t)
	awaitTry(t, lw, 2*time.Second, fmt.Sprintf("own turn %d from a quorum", maxOwnTurns))
	foreign(send) // after the wait, before the try starts
	lw.tryStarts()
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try that also served "+how)
}

// TestReview13ForeignQuorumTurnBeforeTryKeepsRun: another owner's
// release gives the waiter its turn from a quorum.
func TestReview13ForeignQuorumTurnBeforeTryKeepsRun(t *testing.T) {
	review13WakeBeforeTry(t, func(send func(kind, id string, from ...int)) {
		send("turn", "release-of-another-owner", 0, 1)
	}, "another owner's turn from a quorum")
}

// TestReview13ForeignNextBeforeTryKeepsRun: another owner's release
// names the waiter next from a quorum.
func TestReview13ForeignNextBeforeTryKeepsRun(t *testing.T) {
	review13WakeBeforeTry(t, func(send func(kind, id string, from ...int)) {
		send("next", "release-of-another-owner 1", 0, 1)
	}, "another owner's release naming the waiter next from a quorum")
}

// TestReview13ForeignMinorityTurnBeforeTryKeepsRun: another owner's
// release turns the waiter from one node (the queues came apart).
func TestReview13ForeignMinorityTurnBeforeTryKeepsRun(t *testing.T) {
	review13WakeBeforeTry(t, func(send func(kind, id string, from ...int)) {
		send("turn", "release-of-another-owner", 2)
	}, "another owner's turn from one node")
}

// TestReview13DueRenewalCountedAsOwnTurn: the renewal of the waiter's
// entries (lockWait.renew, an extra try at least every half life) came
// due during the third try, which lasted past it; the own turn of its
// undo came too. When a renewal fires alone, its try ends the run (await
// starts each wait with the run ended; the timer brings the try). At
// d8e11c8 takeTurn, which looks at the turn first and knew only standby
// times and back-offs, counted the try as the third own one in a row, as
// 18e5bd6 did with a due standby (TestReview12DueNextStandbyCountedAsOwnTurn).
// The try renews the entries (prepare sets the next renewal half a life
// later: 4 s with the default expiry of 8 s) and its undo frees the key
// on a quorum: the own turn was dropped as the fourth in a row, and the
// waiter slept until the next renewal (its retry delay is 1 h) with the
// lock free on a quorum. Now a due renewal ends the run too.
func TestReview13DueRenewalCountedAsOwnTurn(t *testing.T) {
	lw, send, own := review13Run(t)
	lw.renew = time.Now().Add(-10 * time.Millisecond) // came due during the third try
	awaitTry(t, lw, 2*time.Second, "a due renewal and an own turn from a quorum")
	// The try (prepare) sets the next renewal half an entry's life later.
	lw.renewAt(time.Now().Add(lw.m.entryLife() / 2))
	lw.tryStarts()
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try that a due renewal brought")
}

// TestReview13RenewalAloneEndsRun is the control for
// TestReview13DueRenewalCountedAsOwnTurn: the renewal fires alone, and
// the own turn of that try's undo brings the next try (the run ended).
func TestReview13RenewalAloneEndsRun(t *testing.T) {
	lw, send, own := ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	lw.renew = time.Now().Add(-10 * time.Millisecond)
	awaitTry(t, lw, 2*time.Second, "a due renewal alone")
	lw.renewAt(time.Now().Add(lw.m.entryLife() / 2))
	lw.tryStarts()
	own(maxOwnTurns - 1)
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try that a renewal brought alone")
}
