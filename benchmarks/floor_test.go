package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	goredislib "github.com/redis/go-redis/v9"
)

// The floor is not a lock library: it sends the two commands of an
// uncontended Redlock Lock+Unlock (SET NX PX on every node at once, then a
// compare-and-delete script on every node at once) through go-redis with
// nothing else: no value generation, validity, timeouts or error handling
// beyond failing the benchmark. It shows how much of a library's time/op
// is go-redis and the servers, which no lock library built on go-redis can
// go below.
func init() {
	libraries = append(libraries, library{name: "floor-goredis", nodes: []int{1, 3, 5}, setup: setupFloor})
}

var floorRelease = goredislib.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

func setupFloor(tb testing.TB, addrs []string, key string) locker {
	clients := make([]*goredislib.Client, len(addrs))
	for i, addr := range addrs {
		clients[i] = newGoRedisClient(tb, addr)
	}
	const value = "floor-value-0123456789"
	// all runs fn on every client at once and fails unless each succeeded.
	all := func(fn func(c *goredislib.Client) error) error {
		errs := make([]error, len(clients))
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = fn(c)
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	return locker{
		lock: func(ctx context.Context) error {
			return all(func(c *goredislib.Client) error {
				ok, err := c.SetNX(ctx, key, value, expiry).Result()
				if err == nil && !ok {
					err = fmt.Errorf("floor: %s is taken", key)
				}
				return err
			})
		},
		unlock: func(ctx context.Context) error {
			return all(func(c *goredislib.Client) error {
				n, err := floorRelease.Run(ctx, c, []string{key}, value).Int()
				if err == nil && n != 1 {
					err = fmt.Errorf("floor: %s was not held", key)
				}
				return err
			})
		},
	}
}
