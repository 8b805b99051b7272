package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis/goredis"
)

// Fencing in the harness.
//
// A worker configured with Fencing locks with redsync.WithFencing, logs
// its token with each grant, and, in its critical section, after the sleep
// (where a paused worker wakes up), writes to the resource node with
// redsync.GuardedSet and its token. [CheckFencing] then checks, from the
// workers' logs alone, that tokens strictly increase from one holder to the
// next and that no stale write was accepted.

// A FenceWrite is the guarded write of one grant, as the worker logs it.
type FenceWrite struct {
	Called   int64  `json:"called"`   // GuardedSet called (CLOCK_MONOTONIC)
	Returned int64  `json:"returned"` // GuardedSet returned
	Accepted bool   `json:"accepted"` // the resource took the write
	Stored   uint64 `json:"stored"`   // when refused: the resource's greater token
	Err      string `json:"err,omitempty"`
}

// fenceKey is the resource key of the guarded writes.
func (r *Resource) fenceKey() string { return r.counter + ":fenced" }

// fencedWrite writes the grant's value to the resource with its token
// through GuardedSet, and notes the outcome in g.
func fencedWrite(ctx context.Context, res *Resource, g *Grant) {
	w := &FenceWrite{Called: Mono()}
	err := redsync.GuardedSet(ctx, goredis.NewPool(res.client), res.fenceKey(), fmt.Sprintf("%d/%s", g.Worker, g.Value), g.Token)
	w.Returned = Mono()
	var stale *redsync.StaleTokenError
	switch {
	case err == nil:
		w.Accepted = true
	case errors.As(err, &stale):
		w.Stored = stale.Stored
	default:
		w.Err = err.Error()
	}
	g.Fence = w
}

// FenceResult is what CheckFencing found.
type FenceResult struct {
	Grants int // grants with a token

	// Pairs of holders that followed one another (the earlier one's
	// TryLock returned before the later one's was called) whose tokens did
	// not increase, with the first few of them.
	NotIncreasing int
	Examples      []string

	Writes   int // guarded writes made
	Accepted int // taken by the resource
	Rejected int // refused as stale by the resource
	Errors   int // failed otherwise

	// Stale writes: writes called after the resource had confirmed a write
	// with a greater token. StaleAccepted of them were taken: it must be 0.
	Stale         int
	StaleAccepted int
	// Late writes: writes called after the grant's validity had ended,
	// and how many of them were refused.
	Late, LateRejected int
}

// String formats r for the test log and the report.
func (r FenceResult) String() string {
	return fmt.Sprintf("%d tokens, %d non-increasing pairs; %d guarded writes: %d accepted, %d rejected as stale, %d errors; %d stale, %d of them accepted; %d after their validity, %d of them rejected",
		r.Grants, r.NotIncreasing, r.Writes, r.Accepted, r.Rejected, r.Errors, r.Stale, r.StaleAccepted, r.Late, r.LateRejected)
}

// CheckFencing checks the tokens and guarded writes of the grants (those
// without a token are ignored). All timestamps are CLOCK_MONOTONIC, from
// every process, so they compare exactly.
func CheckFencing(grants []Grant) FenceResult {
	var r FenceResult
	var fenced []Grant
	for _, g := range grants {
		if g.Token != 0 {
			fenced = append(fenced, g)
		}
	}
	r.Grants = len(fenced)

	// Tokens: every grant must have a greater token than all grants whose
	// TryLock returned before its own was called.
	byAcquired := slices.Clone(fenced)
	slices.SortFunc(byAcquired, func(a, b Grant) int { return cmp.Compare(a.Acquired, b.Acquired) })
	highest := make([]int, len(byAcquired)) // index of the highest token among byAcquired[:i+1]
	for i := range byAcquired {
		highest[i] = i
		if i > 0 && byAcquired[highest[i-1]].Token >= byAcquired[i].Token {
			highest[i] = highest[i-1]
		}
	}
	for _, g := range fenced {
		n, _ := slices.BinarySearchFunc(byAcquired, g.Called, func(e Grant, t int64) int { return cmp.Compare(e.Acquired, t) })
		if n == 0 {
			continue
		}
		if prev := byAcquired[highest[n-1]]; prev.Token >= g.Token {
			r.NotIncreasing++
			if len(r.Examples) < 3 {
				r.Examples = append(r.Examples, fmt.Sprintf("worker %d got token %d after worker %d had token %d", g.Worker, g.Token, prev.Worker, prev.Token))
			}
		}
	}

	// Writes: a write called after an accepted write with a greater token
	// had returned is stale, and must have been refused.
	type acceptedWrite struct {
		returned int64
		token    uint64
	}
	var accepted []acceptedWrite
	for _, g := range fenced {
		w := g.Fence
		if w == nil {
			continue
		}
		r.Writes++
		switch {
		case w.Accepted:
			r.Accepted++
			accepted = append(accepted, acceptedWrite{w.Returned, g.Token})
		case w.Err != "":
			r.Errors++
		default:
			r.Rejected++
		}
	}
	slices.SortFunc(accepted, func(a, b acceptedWrite) int { return cmp.Compare(a.returned, b.returned) })
	prefix := make([]uint64, len(accepted)) // the highest token among accepted[:i+1]
	for i, w := range accepted {
		prefix[i] = w.token
		if i > 0 {
			prefix[i] = max(prefix[i], prefix[i-1])
		}
	}
	for _, g := range fenced {
		w := g.Fence
		if w == nil {
			continue
		}
		if w.Called > g.ValidEnd {
			r.Late++
			if !w.Accepted && w.Err == "" {
				r.LateRejected++
			}
		}
		n, _ := slices.BinarySearchFunc(accepted, w.Called, func(e acceptedWrite, t int64) int { return cmp.Compare(e.returned, t) })
		if n > 0 && prefix[n-1] > g.Token {
			r.Stale++
			if w.Accepted {
				r.StaleAccepted++
			}
		}
	}
	return r
}
