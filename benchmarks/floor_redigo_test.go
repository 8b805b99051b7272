package benchmarks

import (
	"context"
	"fmt"
	"testing"

	redigolib "github.com/gomodule/redigo/redis"
)

// setupFloorPipelined is a second floor, not a lock library either: the
// two commands of a Lock+Unlock sent to every node from one goroutine
// over one redigo connection per node, all written first and then all
// read, without a goroutine per node. It shows what a client that did
// not wait on each node in a goroutine of its own could reach.
func setupFloorPipelined(tb testing.TB, addrs []string, key string) locker {
	conns := make([]redigolib.Conn, len(addrs))
	for i, addr := range addrs {
		c, err := redigolib.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	const value = "floor-value-0123456789"
	release := redigolib.NewScript(1, `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	for _, c := range conns {
		if err := release.Load(c); err != nil {
			tb.Fatal(err)
		}
	}
	// all sends one command on every connection, then reads every reply,
	// and fails unless each is want.
	all := func(want any, send func(c redigolib.Conn) error) error {
		for _, c := range conns {
			if err := send(c); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return err
			}
		}
		var first error
		for i, c := range conns {
			reply, err := c.Receive()
			if err == nil && fmt.Sprint(reply) != fmt.Sprint(want) {
				err = fmt.Errorf("floor: node %d replied %v", i, reply)
			}
			if first == nil {
				first = err
			}
		}
		return first
	}
	return locker{
		lock: func(context.Context) error {
			return all("OK", func(c redigolib.Conn) error {
				return c.Send("SET", key, value, "NX", "PX", expiry.Milliseconds())
			})
		},
		unlock: func(context.Context) error {
			return all(int64(1), func(c redigolib.Conn) error { return release.SendHash(c, key, value) })
		},
	}
}
