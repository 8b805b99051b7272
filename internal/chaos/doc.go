// Package chaos is the fault-injection harness of redsync: it checks that
// two holders of one lock never overlap while real redis-server nodes are
// killed, restarted, paused, slowed, cut off or reset, and that its
// checkers catch the faults that plain Redlock cannot survive.
//
// Each row of the fault table (rows_test.go) starts five lock nodes, each
// behind a [Proxy] that injects network faults, and three worker
// processes: the test binary re-executed with $REDSYNC_CHAOS_WORKER set
// ([WorkerMain]), so that a worker can be paused with SIGSTOP. The workers
// lock one key in a loop with TryLock and, while holding it, run a critical
// section on a separate resource node that no fault touches ([Resource]).
// Each grant is logged as a JSON line ([Grant]) with CLOCK_MONOTONIC
// timestamps ([Mono]), the same clock in every process.
//
// The checkers:
//   - the validity sweep ([Sweep]): the windows [acquire returned,
//     min(validity end, release called)] of two holders must not overlap;
//   - the resource's occupancy flag: entering while someone is inside
//     counts a conflict;
//   - the resource's read-sleep-write counter: critical sections minus the
//     final counter are lost updates;
//   - the auditor ([Auditor], [Audit]): how many nodes hold the valid
//     holder's value, sampled every 10 ms, directly on the nodes.
//
// Rows marked canary are known unsafe (a majority restarted empty without
// the restart guard, a worker paused past its validity): the test fails if
// the checkers do not fire on them.
//
// The multi-key rows (multi_rows_test.go) run rows of the table with
// workers that lock overlapping sets of names with
// redsync.NewMultiMutex: two grants whose sets share a name must not
// overlap. There the sweep runs per name ([SweepNames]), each name has an
// occupancy flag, a counter and an auditor of its own, and a canary whose
// worker 0 locks only the first name of each set must make them fire.
//
// The semaphore rows (semaphore_rows_test.go) run rows of the table with
// workers that take permits of one redsync.Semaphore of 2 permits, two
// goroutines each (holders.go). A permit is a shared grant: the sweep
// ([SweepHolders]) finds any acquisition made while as many permits'
// windows as there are permits were open, and the resource's gauge
// ([Resource.EnterShared]) counts a conflict when more holders than
// permits are inside. Their canaries run the same workers with a
// semaphore that counts its holders on each node and grants at a
// majority ([countingSemaphore]): known unsafe for more than one permit,
// it must be caught above its permits.
//
// The RWMutex rows (rwmutex_rows_test.go) run rows of the table with
// workers whose goroutines take the write lock of one redsync.RWMutex one
// time in three and a read share otherwise. A read share is a shared
// grant, a write lock an exclusive one: the sweep finds a writer's window
// that overlaps any other, and the gauge counts a conflict when a writer
// enters while anyone is inside, or a reader while a writer is. Their
// canary's worker 0 takes its read shares as the lock of another name,
// which no writer checks.
//
// go test runs a short table: the rows marked short, each until 100
// acquisitions, one fault cycle and 2 seconds (a canary until the
// checkers fire), which keeps both canaries and the fencing canary in
// every test run. make chaos runs every row of the long table (-args
// -long: at least 10,000 acquisitions per row). Results are in
// docs/RELIABILITY.md.
package chaos
