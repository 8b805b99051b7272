package redsync

import (
	"errors"
	"fmt"
	"strings"
)

// ErrFailed is matched (with errors.Is) by every error of Lock, LockContext,
// TryLock and TryLockContext that reports a lock not acquired: the lock was
// taken, nodes failed, the validity ran out, or the context ended. In the
// last case the error matches ctx.Err() too.
var ErrFailed = errors.New("redsync: failed to acquire lock")

// ErrExtendFailed is matched by the error of Extend when the lock could not
// be extended on a quorum of nodes within its validity.
var ErrExtendFailed = errors.New("redsync: failed to extend lock")

// ErrLockAlreadyExpired is matched by the error of Unlock and Extend when the
// lock key no longer exists on the nodes: it expired before the call.
var ErrLockAlreadyExpired = errors.New("redsync: lock was already expired")

// errUnlocked is the error of Unlock (and, joined with ErrExtendFailed, of
// Extend) after the acquisition was released by an Unlock: nothing is sent
// with its value again.
var errUnlocked = fmt.Errorf("%w: Unlock already released this acquisition", ErrLockAlreadyExpired)

// ErrNotLocked is returned by Unlock, Extend and Valid on a Mutex that holds
// no value: Lock never succeeded and WithValue was not given. Nothing is
// sent to the nodes.
var ErrNotLocked = errors.New("redsync: mutex has no lock value (call Lock first or use WithValue)")

// ErrInvalidConfig is matched by the error that every method of a Mutex
// returns when the Redsync or the Mutex was configured wrongly. The error's
// text names the problem.
var ErrInvalidConfig = errors.New("redsync: invalid configuration")

// ErrWrongType is matched (through [RedisError]) when the lock key holds a
// value that is not a string, such as a list or a hash: no lock can be
// taken on that node until the key is removed.
var ErrWrongType = errors.New("redsync: key is not a lock")

// ErrNodeRestarted is matched (through [RedisError]) when a node refused to
// vote because its process has been up for less than the span of
// [WithRestartGuard]: it may have forgotten locks that are still held.
var ErrNodeRestarted = errors.New("redsync: node restarted too recently to vote")

// ErrCommandUnavailable is matched (through [RedisError]) when a node does
// not have a command that a lock script calls: a server or test double
// (such as miniredis) without it, or a proxy in front of the node. The
// error names the node, and the option that needs the command where one
// does (see [WithRestartGuard]). Another try cannot cure it, so Lock does
// not retry.
var ErrCommandUnavailable = errors.New("redsync: the node does not have a command the lock script calls")

// ErrLockLost is matched by the cause (see context.Cause) of the context
// that [Mutex.Context] returns, and of the context that [Redsync.Do] passes
// to its function, when the lock can no longer be guaranteed: its validity
// ran out, an automatic extension failed, the hold time set by
// [WithMaxHold] is over, or (for Do) the caller's context ended. The error
// of Do matches it too when that happened before the function returned.
var ErrLockLost = errors.New("redsync: lock lost")

// ErrStaleToken is matched by the error of [GuardedSet] when the resource
// has already accepted a write with a greater fencing token: the writer's
// lock has passed to a later holder. The error is a *[StaleTokenError].
var ErrStaleToken = errors.New("redsync: stale fencing token")

// A StaleTokenError reports a write refused by [GuardedSet]: the token
// Offered is less than the token Stored with the resource Key by an
// earlier write. It matches [ErrStaleToken].
type StaleTokenError struct {
	Key     string
	Stored  uint64
	Offered uint64
}

func (e *StaleTokenError) Error() string {
	return fmt.Sprintf("redsync: stale fencing token for %q: offered %d, the resource holds %d", e.Key, e.Offered, e.Stored)
}

// Is reports whether target is ErrStaleToken.
func (e *StaleTokenError) Is(target error) bool {
	return target == ErrStaleToken
}

// ErrTaken is the error of a lock attempt that found the lock held by
// another owner on a quorum of nodes. Nodes lists their indexes (the order
// of the pools given to New). It is returned as *ErrTaken and matches
// [ErrFailed].
type ErrTaken struct {
	Nodes []int
}

func (err ErrTaken) Error() string {
	return fmt.Sprintf("redsync: lock already taken, locked nodes: %v", err.Nodes)
}

// Is reports whether target is ErrFailed: a taken lock is a failed attempt.
func (err ErrTaken) Is(target error) bool {
	return target == ErrFailed
}

// ErrNodeTaken reports that the lock is held by another owner on one node.
// It is returned as *ErrNodeTaken, joined with the other nodes' errors.
type ErrNodeTaken struct {
	Node int
}

func (err ErrNodeTaken) Error() string {
	return fmt.Sprintf("node #%d: lock already taken", err.Node)
}

// A RedisError is an error communicating with one of the Redis nodes: a
// connection failure, a timeout or an error reply. Node is the index of the
// node in the pools given to New. It is returned as *RedisError.
type RedisError struct {
	Node int
	Err  error
}

func (e RedisError) Error() string {
	return fmt.Sprintf("node #%d: %s", e.Node, e.Err)
}

func (e RedisError) Unwrap() error {
	return e.Err
}

// configError is the error of a bad configuration; it matches ErrInvalidConfig.
type configError struct {
	problem string
}

func (e *configError) Error() string {
	return "redsync: invalid configuration: " + e.problem
}

func (e *configError) Is(target error) bool {
	return target == ErrInvalidConfig
}

func newConfigError(format string, args ...any) error {
	return &configError{problem: fmt.Sprintf(format, args...)}
}

// cancelError is the error of a lock attempt ended by its context. It
// matches ErrFailed and the context's error (or cause), and carries the
// node errors of the last attempt, if any.
type cancelError struct {
	cause error
	last  error
}

func (e *cancelError) Error() string {
	msg := "redsync: failed to acquire lock: " + e.cause.Error()
	if e.last != nil {
		msg += "\n" + e.last.Error()
	}
	return msg
}

func (e *cancelError) Is(target error) bool {
	return target == ErrFailed
}

func (e *cancelError) Unwrap() []error {
	if e.last == nil {
		return []error{e.cause}
	}
	return []error{e.cause, e.last}
}

// permanentPrefixes are error replies that another try will not cure.
var permanentPrefixes = []string{"WRONGTYPE", "NOAUTH", "WRONGPASS", "NOPERM"}

// classifyReplyError wraps an error reply of a node so that errors.Is finds
// ErrWrongType, and tells whether retrying is pointless.
func classifyReplyError(err error) (wrapped error, permanent bool) {
	msg := err.Error()
	if isRestartedReply(msg) {
		return fmt.Errorf("%w: %w", ErrNodeRestarted, err), false
	}
	if strings.Contains(msg, "Unknown Redis command called from") || strings.HasPrefix(msg, "ERR unknown command") {
		// The rest of the reply is where in the script, or a Lua stack
		// trace: of no use to the caller.
		return fmt.Errorf("%w (%s)", ErrCommandUnavailable, firstClause(msg)), true
	}
	for _, p := range permanentPrefixes {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p+" ") || strings.Contains(msg, ": "+p) {
			if p == "WRONGTYPE" {
				return fmt.Errorf("%w: %w", ErrWrongType, err), true
			}
			return err, true
		}
	}
	// A user allowed EVAL but not a command the script calls gets a plain
	// ERR reply, worded by version: Redis 7.0 "The user executing the script
	// can't run this command or subcommand", 7.2+ "ACL failure in script".
	for _, denial := range scriptACLDenials {
		if strings.Contains(msg, denial) {
			return err, true
		}
	}
	return err, false
}

// firstClause returns the part of an unknown-command reply that says what
// happened, without where in the script (a script line, or a Lua stack
// trace, as Redis 6 and test doubles add).
func firstClause(msg string) string {
	if strings.Contains(msg, "Unknown Redis command called from") {
		return "Unknown Redis command called from script"
	}
	msg, _, _ = strings.Cut(msg, "\n")
	msg, _, _ = strings.Cut(msg, " script:")
	return strings.TrimSpace(msg)
}

// scriptACLDenials are texts of the error replies of a script whose inner
// command the user may not run.
var scriptACLDenials = []string{"can't run this command or subcommand", "ACL failure in script"}

// lostError is the cause of a held-lock context that ended because the lock
// can no longer be guaranteed. It matches ErrLockLost and wraps what
// happened (an extension's error, the caller's cause), if anything.
type lostError struct {
	reason string
	err    error
}

func (e *lostError) Error() string {
	msg := "redsync: lock lost: " + e.reason
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *lostError) Is(target error) bool {
	return target == ErrLockLost
}

func (e *lostError) Unwrap() error {
	return e.err
}
