package redsync_test

// Compatibility with github.com/go-redsync/redsync/v4: every exported name
// of v4 exists here with v4's exact signature. Each assignment below fails
// to compile when a name is missing or its signature differs; TestCompat
// then locks through those names on a real server.

import (
	"context"
	"errors"
	"testing"
	"time"

	redigolib "github.com/gomodule/redigo/redis"
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/internal/redistest"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
	goredisv9 "github.com/go-redlock/redsync/redis/goredis/v9"
	"github.com/go-redlock/redsync/redis/redigo"
)

// Package redsync: constructors and Redsync.
var (
	_ func(...redis.Pool) *redsync.Redsync                             = redsync.New
	_ func(*redsync.Redsync, string, ...redsync.Option) *redsync.Mutex = (*redsync.Redsync).NewMutex
)

// Methods of Mutex, as method expressions.
var (
	_ func(*redsync.Mutex) error                          = (*redsync.Mutex).Lock
	_ func(*redsync.Mutex, context.Context) error         = (*redsync.Mutex).LockContext
	_ func(*redsync.Mutex) error                          = (*redsync.Mutex).TryLock
	_ func(*redsync.Mutex, context.Context) error         = (*redsync.Mutex).TryLockContext
	_ func(*redsync.Mutex) (bool, error)                  = (*redsync.Mutex).Unlock
	_ func(*redsync.Mutex, context.Context) (bool, error) = (*redsync.Mutex).UnlockContext
	_ func(*redsync.Mutex) (bool, error)                  = (*redsync.Mutex).Extend
	_ func(*redsync.Mutex, context.Context) (bool, error) = (*redsync.Mutex).ExtendContext
	_ func(*redsync.Mutex) (bool, error)                  = (*redsync.Mutex).Valid
	_ func(*redsync.Mutex, context.Context) (bool, error) = (*redsync.Mutex).ValidContext
	_ func(*redsync.Mutex) string                         = (*redsync.Mutex).Name
	_ func(*redsync.Mutex) string                         = (*redsync.Mutex).Value
	_ func(*redsync.Mutex) time.Time                      = (*redsync.Mutex).Until
	_ func(redsync.OptionFunc, *redsync.Mutex)            = redsync.OptionFunc.Apply
	_ func(*redsync.Mutex)                                = redsync.OptionFunc(nil).Apply
	_ func(redsync.Option, *redsync.Mutex)                = redsync.Option.Apply
	_ func(tries int) time.Duration                       = redsync.DelayFunc(nil)
	_ redsync.DelayFunc                                   = func(tries int) time.Duration { return 0 }
	_ redsync.Option                                      = redsync.OptionFunc(nil)
	_ interface{ Apply(*redsync.Mutex) }                  = redsync.Option(nil)
	_ redsync.Option                                      = interface{ Apply(*redsync.Mutex) }(nil)
	_ func(*redsync.Mutex)                                = redsync.OptionFunc(nil)
)

// Options.
var (
	_ func(time.Duration) redsync.Option          = redsync.WithExpiry
	_ func(int) redsync.Option                    = redsync.WithTries
	_ func(time.Duration) redsync.Option          = redsync.WithRetryDelay
	_ func(redsync.DelayFunc) redsync.Option      = redsync.WithRetryDelayFunc
	_ func(float64) redsync.Option                = redsync.WithDriftFactor
	_ func(float64) redsync.Option                = redsync.WithTimeoutFactor
	_ func(func() (string, error)) redsync.Option = redsync.WithGenValueFunc
	_ func(string) redsync.Option                 = redsync.WithValue
	_ func(bool) redsync.Option                   = redsync.WithFailFast
	_ func(bool) redsync.Option                   = redsync.WithShufflePools
	_ func() redsync.Option                       = redsync.WithSetNXOnExtend
)

// Errors: the sentinels are variables of type error, and the error types
// have v4's fields (a conversion from the bare struct type compiles only
// when the fields match exactly) and value-receiver methods.
var (
	_ *error = &redsync.ErrFailed
	_ *error = &redsync.ErrExtendFailed
	_ *error = &redsync.ErrLockAlreadyExpired

	_ = redsync.ErrTaken(struct{ Nodes []int }{})
	_ = redsync.ErrNodeTaken(struct{ Node int }{})
	_ = redsync.RedisError(struct {
		Node int
		Err  error
	}{})

	_ func(redsync.ErrTaken) string     = redsync.ErrTaken.Error
	_ func(redsync.ErrNodeTaken) string = redsync.ErrNodeTaken.Error
	_ func(redsync.RedisError) string   = redsync.RedisError.Error
	_ func(redsync.RedisError) error    = redsync.RedisError.Unwrap

	_ error = redsync.ErrTaken{}
	_ error = &redsync.ErrTaken{}
	_ error = redsync.ErrNodeTaken{}
	_ error = &redsync.ErrNodeTaken{}
	_ error = redsync.RedisError{}
	_ error = &redsync.RedisError{}
)

// v4Conn is redis.Conn of v4, method by method. Assigning both ways proves
// the method sets are identical.
type v4Conn = interface {
	Get(name string) (string, error)
	Set(name string, value string) (bool, error)
	SetNX(name string, value string, expiry time.Duration) (bool, error)
	Eval(script *redis.Script, keysAndArgs ...any) (any, error)
	ScriptLoad(script *redis.Script) error
	PTTL(name string) (time.Duration, error)
	Close() error
}

// compatConn implements v4's Conn with its exact signatures.
type compatConn struct{}

func (compatConn) Get(name string) (string, error)                   { return "", nil }
func (compatConn) Set(name string, value string) (bool, error)       { return true, nil }
func (compatConn) SetNX(string, string, time.Duration) (bool, error) { return true, nil }
func (compatConn) Eval(*redis.Script, ...any) (any, error)           { return int64(1), nil }
func (compatConn) ScriptLoad(*redis.Script) error                    { return nil }
func (compatConn) PTTL(string) (time.Duration, error)                { return 0, nil }
func (compatConn) Close() error                                      { return nil }

// compatPool implements v4's Pool.
type compatPool struct{}

func (compatPool) Get(context.Context) (redis.Conn, error) { return compatConn{}, nil }

// Package redis.
var (
	_ redis.Conn = compatConn{}
	_ v4Conn     = redis.Conn(nil)
	_ redis.Conn = v4Conn(nil)

	_ redis.Pool = compatPool{}
	_ interface {
		Get(context.Context) (redis.Conn, error)
	} = redis.Pool(nil)
	_ redis.Pool = interface {
		Get(context.Context) (redis.Conn, error)
	}(nil)
	_ func(int, string, string) *redis.Script = redis.NewScript
	_                                         = redis.Script(struct {
		KeyCount int
		Src      string
		Hash     string
	}{})
)

// The adapters.
var (
	_ func(goredislib.UniversalClient) redis.Pool = goredis.NewPool
	_ func(goredislib.UniversalClient) redis.Pool = goredisv9.NewPool
	_ func(redigo.Pool) redis.Pool                = redigo.NewPool
	_ redigo.Pool                                 = (*redigolib.Pool)(nil)
	_ redigo.Pool                                 = interface {
		Get() redigolib.Conn
		GetContext(ctx context.Context) (redigolib.Conn, error)
	}(nil)
	_ interface {
		Get() redigolib.Conn
		GetContext(ctx context.Context) (redigolib.Conn, error)
	} = redigo.Pool(nil)
)

// TestCompat locks through the v4 names with each adapter on one server,
// and checks that errors.As finds the v4 error types as pointers, as it
// does with v4.
func TestCompat(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)

	goredisClient := goredislib.NewClient(&goredislib.Options{Addr: srv.Addr()})
	t.Cleanup(func() { goredisClient.Close() })
	redigoPool := &redigolib.Pool{
		MaxIdle: 2,
		DialContext: func(ctx context.Context) (redigolib.Conn, error) {
			return redigolib.DialContext(ctx, "tcp", srv.Addr())
		},
	}
	t.Cleanup(func() { redigoPool.Close() })

	pools := []struct {
		name string
		pool redis.Pool
	}{
		{"goredis", goredis.NewPool(goredisClient)},
		{"goredis-v9", goredisv9.NewPool(goredisClient)},
		{"redigo", redigo.NewPool(redigoPool)},
	}
	for _, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			rs := redsync.New(p.pool)
			m := rs.NewMutex("compat-lock",
				redsync.WithExpiry(5*time.Second),
				redsync.WithTries(3),
				redsync.WithRetryDelay(10*time.Millisecond),
				redsync.WithRetryDelayFunc(func(tries int) time.Duration { return 10 * time.Millisecond }),
				redsync.WithDriftFactor(0.01),
				redsync.WithTimeoutFactor(0.5), // 2.5 s per node: see roomy
				redsync.WithGenValueFunc(func() (string, error) { return "compat-value-" + p.name, nil }),
				redsync.WithValue("overwritten by Lock"),
				redsync.WithFailFast(false),
				redsync.WithShufflePools(true),
				redsync.WithSetNXOnExtend(),
				redsync.OptionFunc(func(*redsync.Mutex) {}),
			)
			if err := m.Lock(); err != nil {
				t.Fatalf("Lock() = %v, want nil", err)
			}
			if m.Name() != "compat-lock" || m.Value() != "compat-value-"+p.name || !m.Until().After(time.Now()) {
				t.Errorf("after Lock(): Name() = %q, Value() = %q, Until() = %v", m.Name(), m.Value(), m.Until())
			}
			if ok, err := m.Extend(); !ok || err != nil {
				t.Errorf("Extend() = %v, %v; want true, nil", ok, err)
			}
			if ok, err := m.Valid(); !ok || err != nil {
				t.Errorf("Valid() = %v, %v; want true, nil", ok, err)
			}

			// Another owner: TryLock fails with *ErrTaken naming node 0.
			other := rs.NewMutex("compat-lock", redsync.WithTries(2), redsync.WithRetryDelay(time.Millisecond), roomy)
			err := other.TryLockContext(context.Background())
			var taken *redsync.ErrTaken
			if !errors.As(err, &taken) || len(taken.Nodes) != 1 || taken.Nodes[0] != 0 {
				t.Errorf("TryLockContext() of a held lock = %v, want *ErrTaken{Nodes: [0]}", err)
			}
			if err := other.LockContext(context.Background()); !errors.As(err, &taken) {
				t.Errorf("LockContext() of a held lock = %v, want *ErrTaken", err)
			}

			if ok, err := m.UnlockContext(context.Background()); !ok || err != nil {
				t.Errorf("UnlockContext() = %v, %v; want true, nil", ok, err)
			}
			if ok, err := m.Unlock(); ok || !errors.Is(err, redsync.ErrLockAlreadyExpired) {
				t.Errorf("second Unlock() = %v, %v; want false and ErrLockAlreadyExpired", ok, err)
			}

			// The key now holds another owner's value: Extend fails with
			// *ErrNodeTaken naming node 0.
			if err := m.TryLock(); err != nil {
				t.Fatalf("TryLock() = %v, want nil", err)
			}
			srv.MustDo(t, "SET", "compat-lock", "someone else")
			ok, err := m.ExtendContext(context.Background())
			var nodeTaken *redsync.ErrNodeTaken
			if ok || !errors.Is(err, redsync.ErrExtendFailed) || !errors.As(err, &nodeTaken) || nodeTaken.Node != 0 {
				t.Errorf("ExtendContext() of a lock taken over = %v, %v; want false, ErrExtendFailed and *ErrNodeTaken{Node: 0}", ok, err)
			}
			if ok, err := m.ValidContext(context.Background()); ok {
				t.Errorf("ValidContext() of a lock taken over = %v, %v; want false", ok, err)
			}

			// A key of another type: Lock fails with *RedisError naming
			// node 0, whose Err has the server's error text.
			srv.MustDo(t, "DEL", "compat-lock")
			srv.MustDo(t, "RPUSH", "compat-lock", "x")
			err = rs.NewMutex("compat-lock", redsync.WithTries(1)).Lock()
			var re *redsync.RedisError
			if !errors.Is(err, redsync.ErrFailed) || !errors.As(err, &re) || re.Node != 0 || re.Err == nil {
				t.Errorf("Lock() of a list key = %v, want ErrFailed and *RedisError{Node: 0}", err)
			}
			srv.MustDo(t, "DEL", "compat-lock")
			if n, err := srv.DBSize(); n != 0 || err != nil {
				t.Errorf("DBSIZE = %d, %v; want 0", n, err)
			}
		})
	}
}
