package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync"
)

// A countingSemaphore is the semaphore of the canary rows, known unsafe:
// each node counts the holders of the semaphore in a sorted set (a member
// per holder, scored with its expiry on the node's clock) and grants while
// it counts fewer than the permits; a permit is held when a majority of
// the nodes granted it, within a validity computed as Redlock's. With 5
// nodes and 2 permits, holders granted by nodes {0,1,2}, {2,3,4} and
// {0,1,3,4} are three, though no node counts more than two: counting at a
// majority is safe only for one permit (docs/REDLOCK.md, "Beyond the
// mutex"). The checkers must see it exceed its permits; the Semaphore of
// the root package, run by the same workers under the same faults, must
// not.
type countingSemaphore struct {
	clients []*goredislib.Client // one per node
	key     string
	permits int
	expiry  time.Duration
}

// countingAcquireScript drops the expired holders of KEYS[1] and, when
// fewer than ARGV[2] remain, adds ARGV[1] as a holder for ARGV[3] ms and
// returns 1; otherwise 0.
var countingAcquireScript = goredislib.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
	return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// acquire tries once to take a permit: it returns the holder's value,
// the end of its validity and the nodes that granted it, or, when less
// than a majority granted it within the validity, an error (a
// *redsync.ErrTaken naming the nodes that counted the permits held, when
// some did) after taking the value back from every node.
func (s *countingSemaphore) acquire(ctx context.Context) (string, time.Time, []int, error) {
	b := make([]byte, 16)
	rand.Read(b)
	value := hex.EncodeToString(b)
	start := time.Now()
	granted, errs := s.each(ctx, func(ctx context.Context, c *goredislib.Client) (bool, error) {
		n, err := countingAcquireScript.Run(ctx, c, []string{s.key}, value, s.permits, s.expiry.Milliseconds()).Int()
		return n == 1, err
	})
	drift := s.expiry/100 + 2*time.Millisecond
	validity := s.expiry - time.Since(start) - drift
	var yes, full []int
	for i, ok := range granted {
		switch {
		case ok:
			yes = append(yes, i)
		case errs[i] == nil:
			full = append(full, i)
		}
	}
	if len(yes) >= len(s.clients)/2+1 && validity > 0 {
		return value, start.Add(s.expiry - drift), yes, nil
	}
	s.release(ctx, value)
	if len(full) > 0 {
		return "", time.Time{}, nil, &redsync.ErrTaken{Nodes: full}
	}
	return "", time.Time{}, nil, fmt.Errorf("counting semaphore: %d of %d nodes granted: %w", len(yes), len(s.clients), errors.Join(errs...))
}

// release takes value back from every node and reports whether a
// majority answered.
func (s *countingSemaphore) release(ctx context.Context, value string) (bool, error) {
	done, errs := s.each(ctx, func(ctx context.Context, c *goredislib.Client) (bool, error) {
		return true, c.ZRem(ctx, s.key, value).Err()
	})
	n := 0
	for i := range done {
		if done[i] && errs[i] == nil {
			n++
		}
	}
	if n < len(s.clients)/2+1 {
		return false, errors.Join(errs...)
	}
	return true, nil
}

// each runs fn on every node at once, each bounded by a per-node timeout
// of a twentieth of the expiry (redsync's default timeout factor), and
// returns their results.
func (s *countingSemaphore) each(ctx context.Context, fn func(context.Context, *goredislib.Client) (bool, error)) ([]bool, []error) {
	ok := make([]bool, len(s.clients))
	errs := make([]error, len(s.clients))
	var wg sync.WaitGroup
	for i, c := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, s.expiry/20)
			defer cancel()
			ok[i], errs[i] = fn(ctx, c)
			if errs[i] != nil {
				ok[i] = false
			}
		}()
	}
	wg.Wait()
	return ok, errs
}
