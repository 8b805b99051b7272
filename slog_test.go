package redsync

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// captureHandler keeps the records it handles, with their attributes
// flattened to "group.key" = value.
type captureHandler struct {
	level slog.Level
	mu    sync.Mutex
	recs  []capturedRecord
}

type capturedRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (h *captureHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := capturedRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	var flatten func(prefix string, a slog.Attr)
	flatten = func(prefix string, a slog.Attr) {
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				flatten(prefix+a.Key+".", g)
			}
			return
		}
		rec.attrs[prefix+a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		flatten("", a)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, rec)
	return nil
}

func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

func (h *captureHandler) records() []capturedRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]capturedRecord(nil), h.recs...)
}

func TestSlogObserver(t *testing.T) {
	c := newFakeCluster(3)
	c.nodes[2].setErr(errors.New("boom"))
	h := &captureHandler{level: slog.LevelDebug}
	m := c.mutex("slog", WithObserver(SlogObserver(slog.New(h))), WithFencing())
	if err := m.Lock(); err != nil {
		t.Fatalf("Lock() = %v, want nil", err)
	}
	if ok, err := m.Extend(); !ok {
		t.Fatalf("Extend() = %v, %v, want true", ok, err)
	}
	value := m.Value()
	m.Unlock()
	other := c.mutex("slog", WithObserver(SlogObserver(slog.New(h))), WithTries(1))
	c.nodes[0].set("slog", "someone else")
	c.nodes[1].set("slog", "someone else")
	if err := other.Lock(); err == nil {
		t.Fatal("Lock() of a lock held elsewhere = nil, want an error")
	}

	recs := h.records()
	want := []struct {
		level slog.Level
		msg   string
		attrs map[string]string
	}{
		{slog.LevelDebug, "redsync: lock acquired", map[string]string{
			"lock": "slog", "attempts": "1", "token": "1",
			"nodes.0": "ok ", "nodes.1": "ok ", "nodes.2": "failed ",
		}},
		{slog.LevelDebug, "redsync: lock extended", map[string]string{"lock": "slog", "nodes.2": "failed "}},
		{slog.LevelDebug, "redsync: lock released", map[string]string{"lock": "slog", "nodes.0": "ok "}},
		{slog.LevelInfo, "redsync: lock not acquired", map[string]string{
			"lock": "slog", "attempts": "1", "nodes.0": "taken ", "error": "redsync: lock already taken",
		}},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r.level != w.level || r.msg != w.msg {
			t.Errorf("record %d = %v %q, want %v %q", i, r.level, r.msg, w.level, w.msg)
		}
		for k, prefix := range w.attrs {
			if got, ok := r.attrs[k]; !ok || !strings.HasPrefix(got, prefix) {
				t.Errorf("record %d (%s): %s = %q, want it to start with %q", i, r.msg, k, got, prefix)
			}
		}
		for k, v := range r.attrs {
			if strings.Contains(v, value) {
				t.Errorf("record %d: %s = %q contains the lock value", i, k, v)
			}
		}
	}
	if !strings.Contains(recs[0].attrs["nodes.2"], "boom") {
		t.Errorf("nodes.2 of the acquisition = %q, want the node's error", recs[0].attrs["nodes.2"])
	}
	if _, ok := recs[0].attrs["validity"]; !ok {
		t.Errorf("acquisition record lacks validity: %v", recs[0].attrs)
	}
	if _, ok := recs[2].attrs["held"]; !ok {
		t.Errorf("release record lacks held: %v", recs[2].attrs)
	}
}

func TestSlogObserverLevels(t *testing.T) {
	h := &captureHandler{level: slog.LevelInfo}
	o := SlogObserver(slog.New(h))
	ctx := context.Background()
	o.OnAcquire(ctx, AcquireEvent{Name: "x"})                                            // Debug: dropped
	o.OnAcquire(ctx, AcquireEvent{Name: "x", Err: &ErrTaken{Nodes: []int{0}}})           // Info
	o.OnAcquire(ctx, AcquireEvent{Name: "x", Err: errors.New("nodes down")})             // Warn
	o.OnExtend(ctx, ExtendEvent{Name: "x", Err: ErrExtendFailed})                        // Warn
	o.OnRelease(ctx, ReleaseEvent{Name: "x", Err: ErrLockAlreadyExpired})                // Warn
	o.OnLost(ctx, LostEvent{Name: "x", Held: time.Second, Err: &lostError{"test", nil}}) // Error
	var got []slog.Level
	for _, r := range h.records() {
		got = append(got, r.level)
	}
	want := []slog.Level{slog.LevelInfo, slog.LevelWarn, slog.LevelWarn, slog.LevelWarn, slog.LevelError}
	if len(got) != len(want) {
		t.Fatalf("levels = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("levels = %v, want %v", got, want)
			break
		}
	}
	if lost := h.records()[4]; lost.msg != "redsync: lock lost" || lost.attrs["held"] != "1s" || lost.attrs["error"] != "redsync: lock lost: test" {
		t.Errorf("lost record = %+v", lost)
	}
}
