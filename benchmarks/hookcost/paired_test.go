//go:build ignore

// run.sh copies this file into a module of its own, without the build
// constraint: it needs a copy of an older tree under another module path,
// so it does not build in place.

// Package obscmp compares, in one process, the Lock+Unlock of an older
// version of the library (example.com/base, a copy of the commit given to
// run.sh) and of the working tree (github.com/go-redlock/redsync), both
// without an observer. Iterations alternate between the two, so that load
// on the machine weighs on both alike; each reports the ratio of the
// medians of single iterations (new/old) and the allocations of each.
package obscmp

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	base "example.com/base"
	"example.com/base/internal/redistest"
	baseredis "example.com/base/redis"
	basegoredis "example.com/base/redis/goredis"
	goredislib "github.com/redis/go-redis/v9"

	cur "github.com/go-redlock/redsync"
	curredis "github.com/go-redlock/redsync/redis"
	curgoredis "github.com/go-redlock/redsync/redis/goredis"
)

type baseMem struct{}

func (baseMem) Get(context.Context) (baseredis.Conn, error) { return nil, fmt.Errorf("no") }
func (baseMem) RunScript(context.Context, *baseredis.ScriptCall) (any, error) {
	return int64(1), nil
}

type curMem struct{}

func (curMem) Get(context.Context) (curredis.Conn, error) { return nil, fmt.Errorf("no") }
func (curMem) RunScript(context.Context, *curredis.ScriptCall) (any, error) {
	return int64(1), nil
}

type mutex interface {
	Lock() error
	Unlock() (bool, error)
}

func cycle(b *testing.B, m mutex) {
	if err := m.Lock(); err != nil {
		b.Fatal(err)
	}
	if ok, err := m.Unlock(); !ok {
		b.Fatal(err)
	}
}

func paired(b *testing.B, old, new mutex) {
	cycle(b, old)
	cycle(b, new)
	var oldT, newT []time.Duration
	timed := func(m mutex, ts *[]time.Duration) {
		start := time.Now()
		cycle(b, m)
		*ts = append(*ts, time.Since(start))
	}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			timed(old, &oldT)
			timed(new, &newT)
		} else {
			timed(new, &newT)
			timed(old, &oldT)
		}
		i++
	}
	// Medians of single iterations: a stall of the machine lands in one
	// iteration of one side, which a median ignores and a sum does not.
	med := func(ts []time.Duration) float64 {
		slices.Sort(ts)
		return float64(ts[len(ts)/2])
	}
	mo, mn := med(oldT), med(newT)
	b.ReportMetric(mn/mo, "new/old")
	b.ReportMetric(mo, "old-ns/op")
	b.ReportMetric(mn, "new-ns/op")
	b.ReportMetric(testing.AllocsPerRun(200, func() { cycle(b, old) }), "old-allocs/op")
	b.ReportMetric(testing.AllocsPerRun(200, func() { cycle(b, new) }), "new-allocs/op")
}

func BenchmarkPairedMemory(b *testing.B) {
	for _, n := range []int{1, 3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			bp := make([]baseredis.Pool, n)
			cp := make([]curredis.Pool, n)
			for i := range n {
				bp[i], cp[i] = baseMem{}, curMem{}
			}
			paired(b, base.New(bp...).NewMutex("k"), cur.New(cp...).NewMutex("k"))
		})
	}
}

func BenchmarkPairedRedis(b *testing.B) {
	servers, err := redistest.LaunchN(5)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	bp := make([]baseredis.Pool, 5)
	cp := make([]curredis.Pool, 5)
	for i, s := range servers {
		c1 := goredislib.NewClient(&goredislib.Options{Addr: s.Addr()})
		c2 := goredislib.NewClient(&goredislib.Options{Addr: s.Addr()})
		defer c1.Close()
		defer c2.Close()
		bp[i], cp[i] = basegoredis.NewPool(c1), curgoredis.NewPool(c2)
	}
	paired(b, base.New(bp...).NewMutex("k:old"), cur.New(cp...).NewMutex("k:new"))
}
