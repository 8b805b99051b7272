// Package redsynctest runs Redlock nodes inside a test, so that code which
// takes locks with redsync can be tested without redis-server: a job that
// must run once across replicas, a handler that must stop when its lock is
// lost, a lock that must survive a node going down.
//
//	func TestReport(t *testing.T) {
//		nodes, rs := redsynctest.New(t, 3) // stopped when the test ends
//		nodes[0].Stop()                    // one node down
//		... run the code under test with rs, or with
//		    redsync.New(nodes.Pools()...) per simulated process ...
//		nodes.FastForward(time.Hour)       // every lock of an hour has expired
//	}
//
// Each [Node] is an in-process Redis server, github.com/alicebob/miniredis/v2,
// on a port of 127.0.0.1, with a pool over a go-redis v9 client
// (github.com/redis/go-redis/v9 through redis/goredis). The controls:
//
//   - [Node.Stop] and [Node.Restart] or [Node.RestartEmpty]: a crash, and
//     a restart with or without the data;
//   - [Node.SetDelay]: a slow node, whose replies come late;
//   - [Node.Pause] and [Node.Resume]: an unresponsive node, which holds
//     every command until it resumes;
//   - [Nodes.FastForward] and [Nodes.ExpireNow]: move time forward, or
//     expire a lock at once;
//   - [Node.Get], [Node.TTL], [Node.Keys], [Nodes.Holders] and
//     [Nodes.Values]: what each node holds.
//
// The package is a module of its own, so that miniredis never becomes a
// dependency of programs that only use redsync.
//
// # Behaviour
//
// The nodes behave as redis-server does for everything redsync sends,
// except WithRestartGuard (below). The package's conformance test runs the
// same scenarios on redis-server processes and on these nodes: Lock,
// TryLock, Extend, Valid, Unlock, expiry by the clock and by FastForward,
// Do ending with ErrLockLost, nodes down and restarted with and without
// their data (and their script cache emptied, as by a restart), slow and
// paused nodes, release notification between processes, the local
// hand-off, fencing with GuardedSet, WithSetNXOnExtend and contention.
//
// Keys expire with the wall clock, as on redis-server (miniredis's
// ClockTTL; its own default is to expire keys only on FastForward), and
// FastForward moves every time to live forward on top of that.
//
// # Where the nodes differ from redis-server
//
//   - WithRestartGuard is not supported. Its script calls INFO and
//     LASTSAVE, which miniredis does not offer to scripts: each node
//     answers with an error reply carrying a Lua stack trace ("Unknown
//     Redis command called from script"), so every Lock of such a Mutex
//     fails with an error matching redsync.ErrFailed. Test code that uses
//     the restart guard against redis-server.
//   - FastForward moves the time to live of keys, not the server's clock:
//     the TIME command, and EXPIREAT and PEXPIREAT, still follow the wall
//     clock. redsync uses none of them except through WithRestartGuard.
//   - SetDelay runs each command when it arrives and holds its reply back,
//     as a slow network does (a busy redis-server would run it late);
//     messages published to subscribers are not delayed.
//   - Restart brings every key back, as redis-server with appendfsync
//     always does; there is no loss of the last writes as with everysec
//     or RDB snapshots. RestartEmpty is the other extreme.
//   - Error texts other than the server's error replies redsync passes on
//     (NOSCRIPT, WRONGTYPE) may differ in wording, and script errors carry
//     miniredis's Lua messages.
//   - The nodes are independent servers: no Redis Cluster, no replication,
//     no ACL permissions, no TLS. Their speed says nothing about
//     redis-server's.
//
// go-redis logs each failed dial of a stopped node to the standard
// logger; set another with goredislib.SetLogger to keep test output
// quiet.
//
// All functions and methods are safe for concurrent use. New must be
// called from the test's goroutine, because it may call t.Fatalf.
package redsynctest
