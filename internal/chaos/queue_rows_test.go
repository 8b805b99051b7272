package chaos

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/go-redlock/redsync/internal/redistest"
)

var queueReportPath = flag.String("chaos.queue.report", "", "write the cross-process waiters' results table (Markdown) to this file")

// queueWorkers is how many worker processes wait for one another in the
// queue rows.
const queueWorkers = 5

// queueRows are the rows of the fault table run again with five worker
// processes, each with one goroutine calling Lock (with the default
// retries) on a Redsync of its own: a Lock that finds the lock taken waits
// in the nodes' queue of waiters and takes the lock after another
// process's release gives it the turn (handoff.go in the root package),
// under the row's fault. There is no local hand-off (one goroutine per
// Redsync). Short rows also run in go test.
var queueRows = []struct {
	base  string
	short bool
}{
	{base: "baseline"},
	{base: "kill-minority"},
	{base: "restart-majority-aof-always"},
	{base: "pause-majority"},
	{base: "blackhole-majority", short: true},
	{base: "slow-majority-validity"},
	{base: "connection-resets"},
}

// TestChaosQueue runs rows of the fault table with waiters of several
// processes in the nodes' queue: the usual checks of each row must hold,
// and acquisitions after a wait must have happened, or the row proved
// nothing about the queue.
func TestChaosQueue(t *testing.T) {
	sc := runScale()
	resource := redistest.Start(t)
	var table []string
	for _, qr := range queueRows {
		r := baseRow(t, qr.base)
		r.name = "queue-" + r.name
		r.fault += fmt.Sprintf("; %d worker processes calling Lock, waiting in the nodes' queue", queueWorkers)
		r.workers, r.wait = queueWorkers, true
		if !selected(r.name, qr.short) {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			res := runRow(t, resource, r, sc)
			waited := 0
			for _, g := range res.grants {
				if g.Waited {
					waited++
				}
			}
			t.Logf("%s: %d acquisitions (%d after a wait), %d fault cycles, %d double grants, %d lost updates, %d conflicts, failed tries %v",
				r.name, res.acquisitions, waited, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts, res.failedTries)
			table = append(table, fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d |",
				r.name, res.acquisitions, waited, res.cycles, res.doubleGrants, res.lostUpdates, res.conflicts))
			check(t, &res, sc)
			if waited == 0 {
				t.Errorf("no acquisition came after a wait: the row did not exercise the queue")
			}
		})
	}
	out := queueMarkdownHeader + "\n" + strings.Join(table, "\n") + "\n"
	t.Logf("queue results:\n%s", out)
	if *queueReportPath != "" {
		if err := os.WriteFile(*queueReportPath, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

const queueMarkdownHeader = `| row | acquisitions | after a wait | fault cycles | double grants | lost updates | occupancy conflicts |
|---|---|---|---|---|---|---|`
