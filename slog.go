package redsync

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"time"
)

// SlogObserver returns an [Observer] that logs every event to l
// (slog.Default() when l is nil), at these levels:
//
//   - Debug: a lock acquired, extended or released;
//   - Info: a Lock that failed because the lock is held elsewhere
//     (the error matches [ErrTaken]);
//   - Warn: any other failure of Lock, Extend or Unlock;
//   - Error: a lock lost.
//
// Each record has the attribute "lock" (the name), "duration" of the call,
// "nodes", a group with one attribute per node named by its index, such as
// nodes.2="failed 400ms: i/o timeout", and "error" on failure. Acquisitions
// add "attempts", "wait", and on success "validity" (the validity left) and
// "token" (with WithFencing); extensions add "validity"; releases and
// losses add "held". The lock's value is never logged: it proves
// ownership, and whoever knows it can release the lock.
//
// Records are only built when l is enabled for their level.
func SlogObserver(l *slog.Logger) Observer {
	if l == nil {
		l = slog.Default()
	}
	return slogObserver{l}
}

type slogObserver struct {
	l *slog.Logger
}

func (o slogObserver) OnAcquire(ctx context.Context, e AcquireEvent) {
	level, msg := slog.LevelDebug, "redsync: lock acquired"
	if e.Err != nil {
		level, msg = slog.LevelWarn, "redsync: lock not acquired"
		var taken *ErrTaken
		if errors.As(e.Err, &taken) {
			level = slog.LevelInfo
		}
	}
	if !o.l.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("lock", e.Name),
		slog.Int("attempts", e.Attempts),
		slog.Duration("wait", e.Wait),
		slog.Duration("duration", e.Duration),
	}
	if e.Err == nil {
		attrs = append(attrs, slog.Duration("validity", e.Validity))
		if e.FencingToken != 0 {
			attrs = append(attrs, slog.Uint64("token", e.FencingToken))
		}
	}
	if len(e.Tries) > 0 {
		attrs = append(attrs, nodesAttr(e.Tries[len(e.Tries)-1].Nodes))
	}
	o.log(ctx, level, msg, attrs, e.Err)
}

func (o slogObserver) OnExtend(ctx context.Context, e ExtendEvent) {
	level, msg := slog.LevelDebug, "redsync: lock extended"
	if e.Err != nil {
		level, msg = slog.LevelWarn, "redsync: lock not extended"
	}
	if !o.l.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("lock", e.Name), slog.Duration("duration", e.Duration)}
	if e.Err == nil {
		attrs = append(attrs, slog.Duration("validity", e.Validity))
	}
	o.log(ctx, level, msg, append(attrs, nodesAttr(e.Nodes)), e.Err)
}

func (o slogObserver) OnRelease(ctx context.Context, e ReleaseEvent) {
	level, msg := slog.LevelDebug, "redsync: lock released"
	if e.Err != nil {
		level, msg = slog.LevelWarn, "redsync: lock not released"
	}
	if !o.l.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("lock", e.Name),
		slog.Duration("held", e.Held),
		slog.Duration("duration", e.Duration),
		nodesAttr(e.Nodes),
	}
	o.log(ctx, level, msg, attrs, e.Err)
}

func (o slogObserver) OnLost(ctx context.Context, e LostEvent) {
	if !o.l.Enabled(ctx, slog.LevelError) {
		return
	}
	attrs := []slog.Attr{slog.String("lock", e.Name), slog.Duration("held", e.Held)}
	o.log(ctx, slog.LevelError, "redsync: lock lost", attrs, e.Err)
}

func (o slogObserver) log(ctx context.Context, level slog.Level, msg string, attrs []slog.Attr, err error) {
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	o.l.LogAttrs(ctx, level, msg, attrs...)
}

// nodesAttr is the group of the nodes' results, in the order of the nodes.
func nodesAttr(nodes []NodeResult) slog.Attr {
	sorted := slices.SortedFunc(slices.Values(nodes), func(a, b NodeResult) int { return cmp.Compare(a.Node, b.Node) })
	attrs := make([]any, len(sorted))
	for i, r := range sorted {
		s := r.Outcome.String() + " " + r.Latency.Round(time.Microsecond).String()
		if r.Err != nil {
			s += ": " + r.Err.Error()
		}
		attrs[i] = slog.String(strconv.Itoa(r.Node), s)
	}
	return slog.Group("nodes", attrs...)
}
