package redsync

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/go-redlock/redsync/redis"
	"strings"
	"testing"
	"time"
)

// TestCommandUnavailable: a node without a command that a lock script
// calls (a test double, a proxy) gives an error that names the node and
// the option that needs the command, matches ErrCommandUnavailable,
// carries no Lua stack trace, and is not retried.
func TestCommandUnavailable(t *testing.T) {
	const reply = "ERR Error running script (call to f_0d8a): @user_script:21: Unknown Redis command called from script\nstack traceback:\n\t[G]: in function 'call'"
	nodes := []*unavailableNode{{reply: reply}, {reply: reply}, {reply: reply}}
	m := New(nodes[0], nodes[1], nodes[2]).NewMutex("k", WithRestartGuard(DefaultExpiry), WithTries(5), WithRetryDelay(0))
	err := m.Lock()
	if !errors.Is(err, ErrCommandUnavailable) || !errors.Is(err, ErrFailed) {
		t.Fatalf("Lock() = %v, want an error matching ErrCommandUnavailable and ErrFailed", err)
	}
	msg := err.Error()
	for _, want := range []string{"node #0", "WithRestartGuard needs TIME, LASTSAVE and INFO", "Unknown Redis command called from"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Lock() = %q, want it to say %q", msg, want)
		}
	}
	if strings.Contains(msg, "stack traceback") || strings.Contains(msg, "@user_script") {
		t.Errorf("Lock() = %q, want no script location or Lua stack trace", msg)
	}
	if got := nodes[0].evals.Load(); got != 2 {
		t.Errorf("scripts sent to node 0 = %d, want 2 (one try and its undo: no retry)", got)
	}
}

// unavailableNode is a node whose every script fails with reply.
type unavailableNode struct {
	reply string
	evals atomic.Int32
}

func (n *unavailableNode) Get(context.Context) (redis.Conn, error) { return unavailableConn{n}, nil }

type unavailableConn struct{ n *unavailableNode }

func (c unavailableConn) Eval(*redis.Script, ...any) (any, error) {
	c.n.evals.Add(1)
	return nil, errors.New(c.n.reply)
}
func (unavailableConn) Get(string) (string, error)       { return "", errUnsupported }
func (unavailableConn) Set(string, string) (bool, error) { return false, errUnsupported }
func (unavailableConn) SetNX(string, string, time.Duration) (bool, error) {
	return false, errUnsupported
}
func (unavailableConn) ScriptLoad(*redis.Script) error     { return errUnsupported }
func (unavailableConn) PTTL(string) (time.Duration, error) { return 0, errUnsupported }
func (unavailableConn) Close() error                       { return nil }
