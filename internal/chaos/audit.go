package chaos

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	goredislib "github.com/redis/go-redis/v9"
)

// A Sample is the auditor's view of the lock key on every node, read
// between Start and End (CLOCK_MONOTONIC).
type Sample struct {
	Start, End int64
	Values     []string // the key's value on each node; "" when missing
	Known      []bool   // whether the node answered
}

// An Auditor reads the lock key on every node, directly (not through the
// proxies), at a fixed interval, to see how many nodes hold the valid
// holder's value.
type Auditor struct {
	clients []*goredislib.Client
	key     string
	every   time.Duration

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	samples  []Sample
}

// StartAuditor starts sampling key on the nodes at addrs every interval,
// until Stop.
func StartAuditor(addrs []string, key string, every time.Duration) *Auditor {
	a := &Auditor{key: key, every: every, done: make(chan struct{})}
	for _, addr := range addrs {
		a.clients = append(a.clients, goredislib.NewClient(&goredislib.Options{
			Addr:                  addr,
			MaxRetries:            -1,
			DialTimeout:           50 * time.Millisecond,
			ReadTimeout:           50 * time.Millisecond,
			WriteTimeout:          50 * time.Millisecond,
			ContextTimeoutEnabled: true,
		}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(ctx)
	return a
}

func (a *Auditor) run(ctx context.Context) {
	defer close(a.done)
	tick := time.NewTicker(a.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := a.sample(ctx)
		a.mu.Lock()
		a.samples = append(a.samples, s)
		a.mu.Unlock()
	}
}

func (a *Auditor) sample(ctx context.Context) Sample {
	n := len(a.clients)
	s := Sample{Values: make([]string, n), Known: make([]bool, n)}
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	s.Start = Mono()
	for i, c := range a.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(ctx, a.key).Result()
			switch {
			case err == nil:
				s.Values[i], s.Known[i] = v, true
			case errors.Is(err, goredislib.Nil):
				s.Known[i] = true
			}
		}()
	}
	wg.Wait()
	s.End = Mono()
	return s
}

// Stop ends the sampling, closes the clients and returns the samples. It
// may be called more than once.
func (a *Auditor) Stop() []Sample {
	a.stopOnce.Do(func() {
		a.cancel()
		<-a.done
		for _, c := range a.clients {
			c.Close()
		}
	})
	return a.samples
}

// AuditResult tells how many nodes held the valid holder's value in the
// samples taken wholly inside one grant's validity window.
type AuditResult struct {
	Samples     int     // samples inside exactly one window
	Holders     [10]int // Holders[k]: samples where k nodes held the value
	Unknown     int     // samples where some node did not answer
	BelowQuorum int     // samples where the answering holders, plus the silent nodes, make no quorum
}

// add adds the counts of o to r.
func (r *AuditResult) add(o AuditResult) {
	r.Samples += o.Samples
	r.Unknown += o.Unknown
	r.BelowQuorum += o.BelowQuorum
	for k, n := range o.Holders {
		r.Holders[k] += n
	}
}

// Audit checks the samples against the grants' windows.
func Audit(samples []Sample, grants []Grant, quorum int) AuditResult {
	sorted := slices.Clone(grants)
	slices.SortFunc(sorted, func(a, b Grant) int { return compareInt64(a.Acquired, b.Acquired) })
	var r AuditResult
	for _, s := range samples {
		// The windows that started before the sample: the holder is among
		// the last few, since windows seldom overlap.
		i, _ := slices.BinarySearchFunc(sorted, s.Start, func(g Grant, t int64) int { return compareInt64(g.Acquired, t) })
		var holder *Grant
		inside := 0
		for j := i - 1; j >= 0 && j >= i-8; j-- {
			if g := &sorted[j]; g.Acquired <= s.Start && s.End <= g.WindowEnd() {
				holder = g
				inside++
			}
		}
		if inside != 1 || holder.Value == "" {
			continue // no holder, or a blind one's value is not known (WorkerConfig.Blind)
		}
		r.Samples++
		holders, silent := 0, 0
		for k, v := range s.Values {
			switch {
			case !s.Known[k]:
				silent++
			case v == holder.Value:
				holders++
			}
		}
		if silent > 0 {
			r.Unknown++
		}
		if holders < len(r.Holders) {
			r.Holders[holders]++
		}
		if holders+silent < quorum {
			r.BelowQuorum++
		}
	}
	return r
}
