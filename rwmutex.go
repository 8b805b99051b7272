package redsync

import (
	"context"
	_ "embed"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/go-redlock/redsync/redis"
)

// The scripts of an RWMutex, on its three keys: the writer's key W (the
// name), the readers' sorted set R and the waiting-writer mark Q (see
// NewRWMutex). The writer extends W with extend.lua, and undoes a failed
// try with release.lua, as a Mutex does.
var (
	//go:embed lua/rw_write_acquire.lua
	rwWriteAcquireSrc string
	//go:embed lua/rw_write_release.lua
	rwWriteReleaseSrc string
	//go:embed lua/rw_read_acquire.lua
	rwReadAcquireSrc string
	//go:embed lua/rw_read_release.lua
	rwReadReleaseSrc string
	//go:embed lua/rw_read_extend.lua
	rwReadExtendSrc string
	//go:embed lua/rw_withdraw.lua
	rwWithdrawSrc string

	// rwWriteAcquireScripts and rwReadAcquireScripts are the acquire
	// scripts, by [guard]: on W, R and Q, and with WithRestartGuard on
	// the guard's marker after them, with the guard's span as the last
	// argument (see guardedSource).
	rwWriteAcquireScripts = [2]*redis.Script{
		redis.NewScript(3, rwWriteAcquireSrc, ""),
		redis.NewScript(4, guardedSource(rwWriteAcquireSrc), ""),
	}
	rwReadAcquireScripts = [2]*redis.Script{
		redis.NewScript(3, rwReadAcquireSrc, ""),
		redis.NewScript(4, guardedSource(rwReadAcquireSrc), ""),
	}
	rwWriteReleaseScript = redis.NewScript(2, rwWriteReleaseSrc, "")
	rwReadReleaseScript  = redis.NewScript(1, rwReadReleaseSrc, "")
	rwReadExtendScript   = redis.NewScript(1, rwReadExtendSrc, "")
	rwWithdrawScript     = redis.NewScript(1, rwWithdrawSrc, "")
)

// guardedSource puts the restart guard's check (guard_check.lua) before
// the acquire script src, whose last key is the guard's marker and last
// argument the guard's span: a node too young to vote answers with an
// error and src does not run.
func guardedSource(src string) string {
	return "local markerKey, guardSpan = KEYS[#KEYS], ARGV[#ARGV]\n" + guardCheckSrc + src
}

// An RWMutex is a distributed reader-writer lock over the nodes of the
// [Redsync] that made it: it is held by one writer alone, or by any number
// of readers together. Each writer and each reader is granted by a quorum
// of nodes, as a [Mutex] is, and is valid for the expiry less the time its
// acquisition took and the drift. A writer that has to wait keeps new
// readers out until it has had its turn or given up, so that a stream of
// readers cannot starve it; readers that already hold the lock keep it
// until they give it back or it expires.
//
// An RWMutex is safe for concurrent use by several goroutines. Its writer
// holds at most one acquisition at a time, as a Mutex does: while one
// goroutine holds the write lock, Lock in another goroutine waits
// (retrying), and Unlock, Extend, Until, Value and Context act on the
// current write acquisition, whichever goroutine calls them. Its readers
// are many: each RLock that succeeds holds a read share of its own, with a
// value of its own, until an RUnlock gives it back; RUnlock gives back the
// most recent share, whichever goroutine took it. [RWMutex.Do] and
// [RWMutex.RDo] hold an acquisition of their own, apart from these.
//
// Unlike a [sync.RWMutex], what excludes is the lock on the nodes, not the
// RWMutex value: RWMutexes of the same name exclude each other, in one
// process or in several, and a Lock of an RWMutex that holds read shares
// waits for them as for any other reader's (it fails after its tries, or
// when its ctx ends, if they are not given back). Waiting calls poll the
// nodes with the retry delay (see [WithRetryDelay]): an RWMutex takes no
// part in release notification and local hand-off.
//
// The writer holds the key called name itself, with a value as a Mutex's;
// the readers and a waiting writer's mark are kept in two keys derived
// from name (see [Redsync.NewRWMutex]). A [Mutex] of the same name
// excludes the writers, but not the readers: do not use the name of an
// RWMutex for anything else.
//
// An RWMutex must not be copied after first use.
type RWMutex struct {
	r    *Redsync
	name string
	// opts are NewRWMutex's options, then the observer that NewRWMutex
	// found: every Mutex made later for a side of the lock has the
	// configuration of the first.
	opts      []Option
	configErr error
	write     *lockKind        // the writer's scripts
	read      *lockKind        // a reader's scripts
	withdraw  redis.ScriptCall // rw_withdraw.lua with this RWMutex's intent id
	w         *Mutex           // the writer of Lock, Unlock and Extend
	now       func() time.Time // the clock of the sides; tests replace it

	mu     sync.Mutex
	shares []*Mutex // the read shares of RLock, oldest first
}

// The keys that an RWMutex derives from its name (see rwKey): a prefix,
// and a suffix for each.
const (
	rwKeyPrefix   = "redsync:rw:"
	readersSuffix = ":readers"
	waitingSuffix = ":writer-waiting"
)

// NewRWMutex returns a reader-writer lock called name, set up with the
// given options, which apply to its writer and to each of its readers as
// they do to a Mutex: [WithExpiry], [WithTries], [WithRetryDelay],
// [WithRetryDelayFunc], [WithDriftFactor], [WithTimeoutFactor],
// [WithFailFast], [WithShufflePools], [WithGenValueFunc], [WithObserver],
// [WithAutoExtend], [WithMaxHold] and [WithRestartGuard].
// [WithReleaseNotification] has no effect: an RWMutex polls. The observer
// is that of the Redsync when NewRWMutex is called, unless WithObserver
// is given; its events carry name for readers and writers alike.
//
// Like NewMutex, it never fails: a bad configuration is returned as an
// error matching [ErrInvalidConfig] by every method that would send a
// command, and then nothing is sent. That is so for an empty name, for
// the options that an RWMutex cannot honour ([WithFencing],
// [WithSetNXOnExtend], whose extension would set a share or the writer's
// key again without the checks that keep them apart, and [WithValue]), for
// and for the problems NewMutex reports.
//
// The writer's key is name. The readers are kept in a sorted set, and a
// waiting writer's mark in a string, whose keys are
// "redsync:rw:{T}:"+name+":readers" and "redsync:rw:{T}:"+name+":writer-waiting",
// where T is a short hash tag that puts them in name's Redis Cluster slot
// (as the fencing counters are named): distinct names derive distinct
// keys, whatever braces they have.
func (r *Redsync) NewRWMutex(name string, options ...Option) *RWMutex {
	w := r.NewMutex(name, options...)
	rw := &RWMutex{r: r, name: name, w: w, now: time.Now, configErr: w.configErr}
	rw.opts = append(slices.Clone(options), WithObserver(w.observer))
	if rw.configErr == nil {
		rw.configErr = rw.setUp()
	}
	w.configErr = rw.configErr
	w.kind = rw.write
	return rw
}

// setUp checks the options that an RWMutex refuses, derives its keys and
// builds the scripts of its sides, or returns the problem.
func (rw *RWMutex) setUp() error {
	c := &rw.w.config
	switch {
	case c.fence.on:
		return newConfigError("WithFencing is not available for an RWMutex: its tokens order the holders of a mutex, and readers hold together")
	case c.setNXOnExtend:
		return newConfigError("WithSetNXOnExtend is not available for an RWMutex: an extension that sets a missing share or writer key again would skip the checks that keep readers and writers apart")
	case c.initValue != "":
		return newConfigError("WithValue is not available for an RWMutex: its readers and writers each get a value of their own")
	}
	readers, waiting := rwKey(rw.name, readersSuffix), rwKey(rw.name, waitingSuffix)
	// The intent id tells this RWMutex's waiting-writer mark from another
	// one's. crypto/rand does not fail (Go 1.24).
	intent, _ := genValue()
	keys := []any{rw.name, readers, waiting}
	writeArgs, readArgs := []any{intent}, []any{}
	guarded := 0
	if c.guard.on {
		keys = append(keys, c.guard.marker)
		writeArgs = append(writeArgs, c.guard.ttlArg)
		readArgs = append(readArgs, c.guard.ttlArg)
		guarded = 1
	}
	rw.write = &lockKind{
		acquire: kindScript{script: rwWriteAcquireScripts[guarded], keys: keys, args: writeArgs},
		release: kindScript{script: rwWriteReleaseScript, keys: []any{rw.name, waiting}, args: []any{intent}},
		undo:    kindScript{script: releaseScript, keys: []any{rw.name}},
		extend:  kindScript{script: extendScript, keys: []any{rw.name}},
	}
	rw.read = &lockKind{
		acquire: kindScript{script: rwReadAcquireScripts[guarded], keys: keys, args: readArgs},
		release: kindScript{script: rwReadReleaseScript, keys: []any{readers}},
		extend:  kindScript{script: rwReadExtendScript, keys: []any{readers}},
	}
	rw.withdraw = redis.NewScriptCall(rwWithdrawScript, waiting, intent)
	return nil
}

// rwKey returns the key of the RWMutex called name with suffix: in name's
// Redis Cluster slot, and in a namespace of its own, so that no other
// name derives it (with the name in braces instead, "doc" and "{doc}"
// would share their readers).
func rwKey(name, suffix string) string {
	return rwKeyPrefix + "{" + slotTag(keySlot(name)) + "}:" + name + suffix
}

// newSide returns a Mutex of kind (rw.write or rw.read) with the options
// first, then NewRWMutex's.
func (rw *RWMutex) newSide(kind *lockKind, first ...Option) *Mutex {
	m := rw.r.NewMutex(rw.name, append(first, rw.opts...)...)
	m.kind = kind
	m.now = rw.now
	return m
}

// Name returns the name of the lock: the writer's key.
func (rw *RWMutex) Name() string {
	return rw.name
}

// Lock acquires the write lock, trying up to the configured number of
// times (see [WithTries]). A try fails where another writer holds the lock
// or readers hold it; where it fails, it leaves the mark of a waiting
// writer, which keeps new readers out for the expiry or until this writer
// has the lock. When Lock gives up it takes its marks back. The error
// matches [ErrFailed] when the lock was not acquired; it is a *[ErrTaken]
// when the last try found the lock held on a quorum of nodes, by a writer
// or by readers. Lock may be called again after a failure.
func (rw *RWMutex) Lock() error {
	return rw.LockContext(context.Background())
}

// LockContext is Lock bounded by ctx. When ctx ends first, the error
// matches both [ErrFailed] and ctx.Err(), as for [Mutex.LockContext], and
// the marks are taken back all the same.
func (rw *RWMutex) LockContext(ctx context.Context) error {
	return rw.lockWriter(ctx, rw.w, rw.w.tries)
}

// TryLock tries once to acquire the write lock, without retrying. When it
// fails, its marks are taken back before it returns: it does not keep
// readers out.
func (rw *RWMutex) TryLock() error {
	return rw.TryLockContext(context.Background())
}

// TryLockContext tries once to acquire the write lock, without retrying.
func (rw *RWMutex) TryLockContext(ctx context.Context) error {
	return rw.lockWriter(ctx, rw.w, 1)
}

// lockWriter makes up to tries tries to acquire the write lock with w,
// and, when they fail, takes this RWMutex's waiting-writer marks back on
// every node (with the per-node timeout, even when ctx has ended): a
// writer that gave up must not keep readers out. A mark that cannot be
// taken back (a node that does not answer) expires after the TTL.
func (rw *RWMutex) lockWriter(ctx context.Context, w *Mutex, tries int) error {
	if ctx == nil {
		ctx = context.Background()
	}
	tried := ctx.Err() == nil && w.configErr == nil
	err := w.lock(ctx, tries)
	if err != nil && tried {
		w.nodes.fanoutScript(context.WithoutCancel(ctx), w.nodeTimeout(), w.failFast, &rw.withdraw)
	}
	return err
}

// Unlock releases the write lock and reports whether a quorum of nodes
// released it, as [Mutex.Unlock] does.
func (rw *RWMutex) Unlock() (bool, error) {
	return rw.UnlockContext(context.Background())
}

// UnlockContext releases the write lock and reports whether a quorum of
// nodes released it, as [Mutex.UnlockContext] does. On each node it also
// deletes this RWMutex's waiting-writer mark, which a try of the Lock left
// where readers were still in while a quorum granted it. Without a write
// acquisition (also when this RWMutex holds only read shares) it returns
// an error matching [ErrNotLocked] and sends nothing.
func (rw *RWMutex) UnlockContext(ctx context.Context) (bool, error) {
	return rw.w.UnlockContext(ctx)
}

// Extend resets the expiry of the write lock on the nodes, as
// [Mutex.Extend] does.
func (rw *RWMutex) Extend() (bool, error) {
	return rw.ExtendContext(context.Background())
}

// ExtendContext resets the expiry of the write lock on the nodes, as
// [Mutex.ExtendContext] does.
func (rw *RWMutex) ExtendContext(ctx context.Context) (bool, error) {
	return rw.w.ExtendContext(ctx)
}

// Until returns when the validity of the current write acquisition ends,
// as [Mutex.Until] does.
func (rw *RWMutex) Until() time.Time {
	return rw.w.Until()
}

// Value returns the value of the current write acquisition, as
// [Mutex.Value] does.
func (rw *RWMutex) Value() string {
	return rw.w.Value()
}

// Context returns a context that lasts as long as the current write
// acquisition is guaranteed, as [Mutex.Context] does.
func (rw *RWMutex) Context() context.Context {
	return rw.w.Context()
}

// RLock acquires a read share, trying up to the configured number of times
// (see [WithTries]). A try fails where a writer holds the lock or waits
// for it. The error matches [ErrFailed] when no share was acquired; it is
// a *[ErrTaken] when the last try found the lock held or awaited by a
// writer on a quorum of nodes. Each RLock that succeeds holds one more
// share, until RUnlock gives it back or it expires.
func (rw *RWMutex) RLock() error {
	return rw.RLockContext(context.Background())
}

// RLockContext is RLock bounded by ctx. When ctx ends first, the error
// matches both [ErrFailed] and ctx.Err(), as for [Mutex.LockContext].
func (rw *RWMutex) RLockContext(ctx context.Context) error {
	return rw.rlock(ctx, 0)
}

// TryRLock tries once to acquire a read share, without retrying.
func (rw *RWMutex) TryRLock() error {
	return rw.TryRLockContext(context.Background())
}

// TryRLockContext tries once to acquire a read share, without retrying.
func (rw *RWMutex) TryRLockContext(ctx context.Context) error {
	return rw.rlock(ctx, 1)
}

// rlock acquires a read share in tries tries (0: as configured) and adds
// it to rw.shares.
func (rw *RWMutex) rlock(ctx context.Context, tries int) error {
	if rw.configErr != nil {
		return rw.configErr
	}
	m := rw.newSide(rw.read)
	if tries == 0 {
		tries = m.tries
	}
	if err := m.lock(ctx, tries); err != nil {
		return err
	}
	rw.mu.Lock()
	rw.shares = append(rw.shares, m)
	rw.mu.Unlock()
	return nil
}

// RUnlock gives back one read share, and reports whether a quorum of nodes
// released it.
func (rw *RWMutex) RUnlock() (bool, error) {
	return rw.RUnlockContext(context.Background())
}

// RUnlockContext gives back one read share: the one acquired last of those
// this RWMutex still holds. It reports whether a quorum of nodes released
// it, as [Mutex.UnlockContext] does. When the share had expired on so many
// nodes that no quorum could release it, the error matches
// [ErrLockAlreadyExpired] and the share is given up all the same. When the
// release reached no quorum for other reasons (node errors, ctx ended),
// the share stays held, and the next RUnlock tries it again. Without a
// share it returns an error matching [ErrNotLocked] and sends nothing.
func (rw *RWMutex) RUnlockContext(ctx context.Context) (bool, error) {
	if rw.configErr != nil {
		return false, rw.configErr
	}
	rw.mu.Lock()
	last := len(rw.shares) - 1
	if last < 0 {
		rw.mu.Unlock()
		return false, ErrNotLocked
	}
	m := rw.shares[last]
	rw.shares[last] = nil
	rw.shares = rw.shares[:last]
	rw.mu.Unlock()
	ok, err := m.UnlockContext(ctx)
	if !ok && !errors.Is(err, ErrLockAlreadyExpired) {
		rw.mu.Lock()
		rw.shares = append(rw.shares, m)
		rw.mu.Unlock()
	}
	return ok, err
}

// RExtend resets the expiry of every read share this RWMutex holds, and
// reports whether all of them were extended.
func (rw *RWMutex) RExtend() (bool, error) {
	return rw.RExtendContext(context.Background())
}

// RExtendContext resets the expiry of every read share this RWMutex holds,
// each as [Mutex.ExtendContext] does, at the same time, and reports
// whether all of them were extended on a quorum within their validity.
// The error joins those of the shares that were not; each matches
// [ErrExtendFailed]. Without a share it returns an error matching
// [ErrNotLocked] and sends nothing. A share that RUnlock gives back while
// RExtend runs is left out of the result (ErrNotLocked when none is left).
func (rw *RWMutex) RExtendContext(ctx context.Context) (bool, error) {
	if rw.configErr != nil {
		return false, rw.configErr
	}
	rw.mu.Lock()
	shares := slices.Clone(rw.shares)
	rw.mu.Unlock()
	if len(shares) == 0 {
		return false, ErrNotLocked
	}
	errs := make([]error, len(shares))
	extend := func(i int) {
		if ok, err := shares[i].ExtendContext(ctx); !ok {
			errs[i] = err
			if err == nil {
				errs[i] = ErrExtendFailed
			}
		}
	}
	var wg sync.WaitGroup
	for i := range shares[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			extend(i + 1)
		}()
	}
	extend(0)
	wg.Wait()
	// A share that RUnlock gave back during the round was not this call's
	// to extend: its failure says nothing about the shares still held.
	held := 0
	rw.mu.Lock()
	for i, m := range shares {
		if slices.Contains(rw.shares, m) {
			held++
		} else {
			errs[i] = nil
		}
	}
	rw.mu.Unlock()
	if held == 0 {
		return false, ErrNotLocked
	}
	err := errors.Join(errs...)
	return err == nil, err
}

// Do runs fn while holding the write lock, as [Redsync.Do] does with a
// Mutex: it acquires the lock with a writer of its own (apart from Lock's),
// extends it automatically while fn runs (a third of the expiry unless
// [WithAutoExtend] was given to NewRWMutex), and releases it when fn
// returns, also when fn panics. fn's context ends, with a cause matching
// [ErrLockLost], as soon as the lock can no longer be guaranteed or ctx
// ends; its Deadline is the end of the validity. When the lock cannot be
// acquired, Do returns the error of LockContext (the waiting writer's
// marks are taken back) without calling fn; otherwise fn's error, joined
// as Redsync.Do joins it. [MutexFromContext] finds no Mutex in fn's
// context.
func (rw *RWMutex) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if rw.configErr != nil {
		return rw.configErr
	}
	w := rw.newSide(rw.write, doOptions(nil)...)
	return holdWhile(ctx, w, func(ctx context.Context) error { return rw.lockWriter(ctx, w, w.tries) }, fn, false)
}

// RDo runs fn while holding a read share, as [RWMutex.Do] does with the
// write lock: the share is its own (RUnlock does not give it back), it is
// extended automatically while fn runs, and it is given back when fn
// returns or panics.
func (rw *RWMutex) RDo(ctx context.Context, fn func(ctx context.Context) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if rw.configErr != nil {
		return rw.configErr
	}
	m := rw.newSide(rw.read, doOptions(nil)...)
	return holdWhile(ctx, m, m.LockContext, fn, false)
}
