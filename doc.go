// Package redsync provides a distributed mutual exclusion lock over Redis,
// using the Redlock algorithm across N independent Redis masters.
//
// A lock is held when a majority of the nodes (N/2 + 1) granted it within
// its validity: the expiry less the time the grant took and an allowance
// for clock drift. Each node is reached through a [redis.Pool]; the adapter
// packages redis/goredis (github.com/redis/go-redis/v9) and redis/redigo
// (github.com/gomodule/redigo) make one from a driver's client.
//
// The API is that of github.com/go-redsync/redsync/v4: a program written for
// it compiles and behaves the same after changing the import paths. The
// differences a caller can observe are listed in the README.
//
// # Rules
//
// A [Redsync] and the [Mutex] values it makes are safe for concurrent use.
// A Mutex holds at most one acquisition at a time. Every method that sends
// commands bounds each node by a per-node timeout (see [WithTimeoutFactor]),
// so one dead node costs one timeout, not the whole call.
//
// Errors match sentinels with errors.Is ([ErrFailed], [ErrExtendFailed],
// [ErrLockAlreadyExpired], [ErrNotLocked], [ErrInvalidConfig],
// [ErrWrongType]) and carry the failing node's index in a *[RedisError] or
// *[ErrNodeTaken], found with errors.As.
//
// # Lifetime and hand-off
//
// [Redsync.Do] holds a lock while a function runs, extending it in the
// background, and cancels the function's context (with a cause matching
// [ErrLockLost]) as soon as the lock can no longer be guaranteed.
// [Mutex.Context] and [WithAutoExtend] give the same to Lock and Unlock.
// Unlock announces the release (Redis pub/sub), and a Lock that waits is
// woken by the announcement instead of polling, when its pools implement
// [redis.Subscriber]; see [WithReleaseNotification]. A waiting Lock of the
// same Redsync is handed the lock by Unlock directly, in one round or, when
// the acquisition has nearly all its validity left, in none.
//
// # Safety
//
// Redlock assumes nodes that do not forget granted locks (persistence with
// appendfsync always, or a restart delayed beyond the longest expiry),
// clocks that do not jump forward, and a holder that finishes its work
// within the validity. A holder paused past its validity (GC, SIGSTOP) can
// still act on the resource; only a token checked by the resource prevents
// that. [WithFencing] issues such tokens, strictly increasing from one
// holder to the next across the quorum, and [GuardedSet] checks them for a
// resource kept in Redis (docs/FENCING.md).
package redsync
