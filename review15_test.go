package redsync

import (
	"fmt"
	"testing"
	"time"
)

// TestReview15RenewalDueBeforeTryKeepsRun: the renewal of the waiter's
// entries (lockWait.renew) comes due after the wait that the own turn of
// the second try's undo ended (the third own-turn try in a row), but
// before that try starts. The try serves the renewal (prepare sets the
// next one half an entry's life later), as it serves another owner's
// wake-up that comes in the same gap (the TestReview13 ...BeforeTry
// tests): had the renewal come due a moment earlier, during the wait,
// takeTurn would have ended the run (TestReview13DueRenewalCountedAsOwnTurn).
// At 9b9a906 lockWait.tryStarts looked only at the waiter's turns and
// standby time, not at the renewal, so the run went on: the undo of the
// third try freed the key on a quorum again (its replies were lost, as
// before), its own turn was dropped as the "fourth in a row", and the
// waiter slept until its next renewal (4 s with the default expiry; its
// retry delay is 1 h) with the lock free on a quorum. Now a due renewal
// ends the run there too.
func TestReview15RenewalDueBeforeTryKeepsRun(t *testing.T) {
	lw, send, own := ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns-1)
	// The renewal is due shortly, after the third wait ends.
	lw.renew = time.Now().Add(200 * time.Millisecond)
	send("turn", own(maxOwnTurns-1), 0, 1)
	awaitTry(t, lw, 150*time.Millisecond, fmt.Sprintf("own turn %d from a quorum", maxOwnTurns))
	time.Sleep(time.Until(lw.renew) + 5*time.Millisecond) // the renewal came due: the try serves it
	if !renewDueAt(lw.renew) {
		t.Fatal("the renewal is not due")
	}
	lw.tryStarts()
	// The try (prepare) sets the next renewal half an entry's life later.
	lw.renewAt(time.Now().Add(lw.m.entryLife() / 2))
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try that also served a renewal that came due before it")
}

// TestReview15RenewalAloneEndsRun is the control: the renewal fires
// alone, its try ends the run, and the own turn of its undo brings the
// next try.
func TestReview15RenewalAloneEndsRun(t *testing.T) {
	lw, send, own := ownTurnFixture(t)
	ownTurnTries(t, lw, send, own, maxOwnTurns)
	lw.renew = time.Now().Add(50 * time.Millisecond)
	awaitTry(t, lw, 2*time.Second, "a renewal alone")
	lw.tryStarts()
	lw.renewAt(time.Now().Add(lw.m.entryLife() / 2))
	send("turn", own(maxOwnTurns), 0, 1)
	awaitTry(t, lw, 2*time.Second, "own turn from a quorum after a try that a renewal brought alone")
}

// renewDueAt reports whether a renewal set for renew has come.
func renewDueAt(renew time.Time) bool {
	return !renew.IsZero() && !time.Now().Before(renew)
}
