package redsync

import "time"

// acquisition is the current acquisition of a Mutex: the value that proves
// ownership on the nodes, how long it is valid, the script calls made for
// it, and where it is in its life. The Mutex's mu guards it.
type acquisition struct {
	state acqState
	value string
	until time.Time  // end of the validity; zero in state acqGiven
	calls *lockCalls // nil in state acqNone
	// unlockedFrom is, in state acqUnlocked, the state the Unlock took
	// the acquisition from, and to which giveBack returns it.
	unlockedFrom acqState

	// What decides whether an Unlock may pass the acquisition itself on
	// to a waiter of this process, with no round (passOn in transfer.go):
	// shown is set once Value returned the value (code outside the
	// library may hold it); checks counts the Extend and Valid calls of
	// this acquisition in flight, whose outcome passing on would not see;
	// doubtful is set when one of them failed, or an Unlock failed (the
	// nodes may have lost the key).
	shown    bool
	doubtful bool
	checks   int
}

// acqState is where an acquisition is in its life:
//
//	acqNone     --Lock-->            acqHeld
//	acqNone     --WithValue-->       acqGiven
//	acqHeld, acqGiven --Unlock-->    acqUnlocked
//	acqUnlocked --Unlock that failed on node errors--> as before (giveBack)
//	any         --Lock-->            acqHeld (a new acquisition)
//
// A failed Lock leaves the acquisition as it was. Extend moves until
// forward; the lease (lease.go) says whether the lock is still held.
type acqState uint8

const (
	acqNone     acqState = iota // no Lock succeeded yet, and no WithValue
	acqGiven                    // WithValue's: made elsewhere, validity unknown here
	acqHeld                     // made by Lock, or handed over by a local hand-off
	acqUnlocked                 // taken by an Unlock: Unlock, Extend and Valid send nothing
)

// usable returns nil when Unlock, Extend and Valid may act on a: ErrNotLocked
// before any acquisition, errUnlocked after Unlock took it.
func (a *acquisition) usable() error {
	if a == nil {
		return ErrNotLocked // a Mutex not made by NewMutex
	}
	switch a.state {
	case acqNone:
		return ErrNotLocked
	case acqUnlocked:
		return errUnlocked
	}
	return nil
}
