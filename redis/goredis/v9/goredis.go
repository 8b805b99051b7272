// Package goredis is redis/goredis under the import path that
// go-redsync/redsync v4 used for go-redis v9
// (github.com/go-redsync/redsync/v4/redis/goredis/v9), so that a v4 program
// only changes its import paths' prefix.
package goredis

import (
	goredislib "github.com/redis/go-redis/v9"

	"github.com/go-redlock/redsync/redis"
	"github.com/go-redlock/redsync/redis/goredis"
)

// NewPool returns a Pool that sends its commands through client; see
// [goredis.NewPool].
func NewPool(client goredislib.UniversalClient) redis.Pool {
	return goredis.NewPool(client)
}
