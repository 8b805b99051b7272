package chaos

import "time"

// A Grant is one acquisition of the lock by a worker, as the worker logs
// it: the CLOCK_MONOTONIC timestamps (see [Mono]) of the acquisition and
// the operations of its critical section on the resource.
type Grant struct {
	Worker    int `json:"w"`
	Goroutine int `json:"g,omitempty"` // of the worker (WorkerConfig.Goroutines)
	Seq       int `json:"seq"`
	// Names are the lock names of a grant of a multi-key row (a Mutex of
	// redsync.NewMultiMutex, or of one of the names); nil for the one key
	// of the other rows.
	Names []string `json:"names,omitempty"`
	// Shared marks a grant that others may hold at the same time: a read
	// share of an RWMutex, a permit of a Semaphore (holders.go); a write
	// lock and a Mutex are exclusive.
	Shared bool `json:"shared,omitempty"`
	// Value is the lock value, unique per acquisition.
	Value    string `json:"value"`
	Called   int64  `json:"called"`    // TryLock called
	Acquired int64  `json:"acquired"`  // TryLock returned nil
	ValidEnd int64  `json:"valid_end"` // Mutex.Until, on the monotonic clock
	Released int64  `json:"released"`  // Unlock called
	// Granted are the nodes that granted the grant, for the canary's
	// counting semaphore (counting.go); nil when unknown.
	Granted []int `json:"granted,omitempty"`

	// Found is "" when the worker entered an empty resource, else the
	// occupant it found inside (an occupancy conflict).
	Found string `json:"found,omitempty"`
	// FoundOn, for a grant of a multi-key row (Names set), maps each
	// name whose resource had someone inside on entry to that occupant
	// (one occupancy conflict each); Found is then "".
	FoundOn     map[string]string `json:"found_on,omitempty"`
	Hold        time.Duration     `json:"hold"`  // the sleep between read and write
	Read        int64             `json:"read"`  // the counter read on entry (one-key rows)
	Wrote       int64             `json:"wrote"` // the counter written before leaving (one-key rows)
	ResourceErr string            `json:"resource_err,omitempty"`

	// HandedOver: the lock came by local hand-off from another goroutine
	// of the worker (WorkerConfig.Goroutines).
	HandedOver bool `json:"handed_over,omitempty"`
	// Waited: the Lock call made more than one try (WorkerConfig.Wait, or
	// Goroutines): it waited for a release, unless handed over.
	Waited bool `json:"waited,omitempty"`

	Unlocked  bool   `json:"unlocked"`
	UnlockErr string `json:"unlock_err,omitempty"`

	// With WorkerConfig.Fencing (fencing.go): the grant's token, and its
	// guarded write.
	Token uint64      `json:"token,omitempty"`
	Fence *FenceWrite `json:"fence,omitempty"`
}

// WindowEnd returns the end of the grant's validity window: the validity
// end, or the release if it came first. No other holder may acquire the
// lock between Acquired and WindowEnd.
func (g *Grant) WindowEnd() int64 {
	return min(g.ValidEnd, g.Released)
}

// A Summary is the last line of a worker's log: what the worker saw
// besides its grants.
type Summary struct {
	Worker   int               `json:"w"`
	Grants   int               `json:"grants"`
	Failures map[string]int    `json:"failures"` // failed tries by class
	Samples  map[string]string `json:"samples"`  // the first error of each class
}

// LogLine is one JSON line of a worker's log: a grant or, last, the
// summary.
type LogLine struct {
	Grant   *Grant   `json:"grant,omitempty"`
	Summary *Summary `json:"summary,omitempty"`
}
