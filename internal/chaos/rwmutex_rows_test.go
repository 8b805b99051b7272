package chaos

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/go-redlock/redsync/internal/redistest"
)

var rwmutexReportPath = flag.String("chaos.rwmutex.report", "", "write the RWMutex results table (Markdown) to this file")

// The RWMutex rows: each of the three workers runs rwGoroutines
// goroutines, each with an RWMutex of its own on lockKey, whose tries take
// the write lock one time in rwWriteEvery and a read share otherwise.
const (
	rwGoroutines = 2
	rwWriteEvery = 3
)

// rwmutexRow is a row of the fault table run with an RWMutex.
type rwmutexRow struct {
	base string // the name of the row in rows()
	// uncheckedReads: worker 0 takes its read shares as the lock of
	// another name, which no writer checks (a canary).
	uncheckedReads bool
	short          bool // also in the short table (go test)
}

// rwmutexRows are the rows of the fault table run again with the workers
// taking the write lock and read shares of one redsync.RWMutex.
var rwmutexRows = []rwmutexRow{
	{base: "baseline"},
	{base: "kill-minority"},
	{base: "restart-majority-immediate-guard"},
	{base: "restart-majority-aof-always"},
	{base: "pause-majority"},
	{base: "slow-majority-validity"},
	{base: "blackhole-majority"},
	{base: "connection-resets", short: true},
	{base: "baseline", uncheckedReads: true, short: true},
	{base: "canary-restart-majority"},
}

// TestChaosRWMutex runs rows of the fault table with the workers taking
// the write lock (TryLock) and read shares (TryRLock) of one RWMutex: a
// writer must hold alone, readers together. The checkers: the resource's
// gauge (a writer entering while anyone is inside, or a reader while the
// writer is, counts a conflict), the sweep of the validity windows
// (SweepHolders: a writer's window overlaps no other), the counter (a
// writer reads, sleeps and writes it; a reader counts itself with one
// atomic increment, which a writer inside at the same time would
// overwrite), and the auditor on the writer's key. Two canaries: worker 0
// taking its read shares unchecked, and a majority of the nodes restarted
// empty without the restart guard. go test runs the rows marked short;
// -long runs all of them to at least 10,000 acquisitions each.
func TestChaosRWMutex(t *testing.T) {
	sc := runScale()
	resource := redistest.Start(t)
	var table []string
	for _, rr := range rwmutexRows {
		r := baseRow(t, rr.base)
		r.name = "rwmutex-" + r.name
		r.primitive, r.writeEvery, r.goroutines = primitiveRWMutex, rwWriteEvery, rwGoroutines
		r.fault += fmt.Sprintf("; %d workers x %d goroutines take an RWMutex, writing one try in %d", r.workerCount(), r.goroutines, r.writeEvery)
		if rr.uncheckedReads {
			r.name = "rwmutex-canary-unchecked-reads"
			r.fault += "; worker 0 takes its read shares as the lock of another name"
			r.kind = canary
			r.uncheckedReads = true
		}
		if !selected(r.name, rr.short) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			res := runRow(t, resource, r, sc)
			reads := 0
			for _, g := range res.grants {
				if g.Shared {
					reads++
				}
			}
			t.Logf("%s: %d acquisitions (%d read shares), at most %d readers inside at once, %d fault cycles, %d acquired in breach, %d lost updates, %d conflicts, try p99 %v, failed tries %v, auditor %+v",
				r.name, res.acquisitions, reads, res.peak, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts, res.p99, res.failedTries, res.audit)
			table = append(table, holdersMarkdownRow(&res))
			check(t, &res, sc)
			if r.kind == canary && res.doubleGrants == 0 {
				t.Errorf("the sweep found no acquisition in breach of a writer's window")
			}
			if sc == longScale && r.kind == safe && (reads == res.acquisitions || res.peak < 2) {
				t.Errorf("%d writes, at most %d readers inside at once: the row did not exercise both sides", res.acquisitions-reads, res.peak)
			}
		})
	}
	out := holdersMarkdownHeader + "\n" + strings.Join(table, "\n") + "\n"
	t.Logf("RWMutex results:\n%s", out)
	if *rwmutexReportPath != "" {
		if err := os.WriteFile(*rwmutexReportPath, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}
