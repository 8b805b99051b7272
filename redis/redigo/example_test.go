package redigo_test

import (
	"log"

	redigolib "github.com/gomodule/redigo/redis"

	"github.com/go-redlock/redsync"
	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/redigo"
)

// ExampleNewBatchedPool makes a Redsync whose concurrent Lock, Unlock and
// Extend calls share one connection per node. Close the BatchedPools
// before their redigo pools.
func ExampleNewBatchedPool() {
	addrs := []string{"127.0.0.1:6379", "127.0.0.1:6380", "127.0.0.1:6381"}
	pools := make([]redis.Pool, len(addrs))
	for i, addr := range addrs {
		rp := &redigolib.Pool{
			MaxIdle: 16,
			Dial:    func() (redigolib.Conn, error) { return redigolib.Dial("tcp", addr) },
		}
		defer rp.Close()
		bp := redigo.NewBatchedPool(rp)
		defer bp.Close()
		pools[i] = bp
	}
	rs := redsync.New(pools...)

	mutex := rs.NewMutex("my-global-mutex")
	if err := mutex.Lock(); err != nil {
		log.Fatal(err)
	}
	// ... work while holding the lock ...
	if ok, err := mutex.Unlock(); !ok || err != nil {
		log.Fatal("unlock failed: ", err)
	}
}
