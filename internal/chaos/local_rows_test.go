package chaos

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/go-redlock/redsync/internal/redistest"
)

var localReportPath = flag.String("chaos.local.report", "", "write the local hand-off results table (Markdown) to this file")

// localGoroutines is how many goroutines of each worker share its Redsync
// in the local hand-off rows.
const localGoroutines = 3

// passOnGoroutines is how many in the rows where the lock is passed on
// without a round.
const passOnGoroutines = 8

// localRows are the rows of the fault table run again with three
// goroutines per worker calling Lock on one Redsync, so that the lock
// often passes from one to the next by local hand-off (transfer.go in the
// root package), under the row's fault. Short rows also run in go test.
//
// The rows marked blind do the same with goroutines that never read their
// Mutex's value and have no observer, so that most hand-offs pass the
// acquisition on without a round (WorkerConfig.Blind); their grants are
// counted as handed over when they were passed on. The short run takes
// the baseline one: under a fault most hand-offs are rounds (an
// acquisition that a paused node did not confirm is not passed on), and a
// pause that covers most of a short run leaves none to count.
var localRows = []struct {
	base  string
	short bool
	blind bool
}{
	{base: "baseline"},
	{base: "restart-majority-aof-always"},
	{base: "pause-majority"},
	{base: "blackhole-majority", short: true},
	{base: "slow-majority-validity"},
	{base: "connection-resets"},
	{base: "baseline", blind: true, short: true},
	{base: "restart-majority-aof-always", blind: true},
	{base: "pause-majority", blind: true},
	{base: "slow-majority-validity", blind: true},
	{base: "connection-resets", blind: true},
}

// TestChaosLocalHandOff runs rows of the fault table with local hand-offs:
// the usual checks of each row must hold, and hand-offs must have
// happened, or the row proved nothing about them.
func TestChaosLocalHandOff(t *testing.T) {
	sc := runScale()
	resource := redistest.Start(t)
	var table []string
	for _, lr := range localRows {
		r := baseRow(t, lr.base)
		r.name = "local-" + r.name
		r.fault += fmt.Sprintf("; %d goroutines per worker on one Redsync (local hand-off)", localGoroutines)
		r.goroutines = localGoroutines
		if lr.blind {
			// With three goroutines the next one in line is mostly the
			// one with an entry in the nodes' queues (the one that stands
			// for the worker there), which only a round takes out.
			r.name = "local-passon-" + lr.base
			r.goroutines = passOnGoroutines
			r.fault = baseRow(t, lr.base).fault + fmt.Sprintf("; %d goroutines per worker on one Redsync, values never read (passed on without a round)", passOnGoroutines)
			r.blind = true
		}
		if !selected(r.name, lr.short) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			res := runRow(t, resource, r, sc)
			handedOver := 0
			for _, g := range res.grants {
				if g.HandedOver {
					handedOver++
				}
			}
			t.Logf("%s: %d acquisitions (%d handed over), %d fault cycles, %d double grants, %d lost updates, %d conflicts, failed tries %v",
				r.name, res.acquisitions, handedOver, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts, res.failedTries)
			table = append(table, fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d |",
				r.name, res.acquisitions, handedOver, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts))
			check(t, &res, sc)
			if handedOver == 0 {
				t.Errorf("no acquisition was a local hand-off (or, in a passon row, passed on): the row did not exercise it")
			}
		})
	}
	out := localMarkdownHeader + "\n" + strings.Join(table, "\n") + "\n"
	t.Logf("local hand-off results:\n%s", out)
	if *localReportPath != "" {
		if err := os.WriteFile(*localReportPath, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

const localMarkdownHeader = `| row | acquisitions | handed over locally | fault cycles | double grants | lost updates | occupancy conflicts |
|---|---|---|---|---|---|---|`
