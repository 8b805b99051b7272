//go:build unix

package main

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// A backgroundWriter passes what is written to it on to another writer
// from a goroutine of its own, so that a standard error that blocks (a
// pipe whose reader is stuck, a terminal paused with Ctrl-S) never holds
// up the caller: redsync must stop the job in time whatever becomes of
// its messages. What does not fit in its queue is dropped. Write may be
// called from any goroutine, also after close (it then drops what it
// gets); close is called once, by the owner, which the goroutine outlives
// only while the other writer blocks.
type backgroundWriter struct {
	mu     sync.Mutex
	queue  chan []byte
	closed bool
	done   chan struct{} // closed once the goroutine has passed the queue on
}

// backgroundQueue is how many writes a backgroundWriter holds.
const backgroundQueue = 64

// newBackgroundWriter returns a backgroundWriter that passes on to w.
func newBackgroundWriter(w io.Writer) *backgroundWriter {
	b := &backgroundWriter{queue: make(chan []byte, backgroundQueue), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for p := range b.queue {
			_, _ = w.Write(p)
		}
	}()
	return b
}

// Write queues a copy of p, and reports success even when it drops it.
func (b *backgroundWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		select {
		case b.queue <- bytes.Clone(p):
		default:
		}
	}
	return len(p), nil
}

// close stops the queue and waits up to limit for what it holds to be
// passed on.
func (b *backgroundWriter) close(limit time.Duration) {
	b.mu.Lock()
	b.closed = true
	close(b.queue)
	b.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
	}
}
