package mocktest

import (
	"testing"

	"github.com/go-redis/redismock/v9"

	goredis "github.com/go-redlock/redsync/redis/goredis/v9"
)

// newNodeV9 returns a node of redis/goredis/v9 (redis/goredis under v4's
// import path) over a redismock/v9 client.
func newNodeV9(t *testing.T) mockedNode {
	client, mock := redismock.NewClientMock()
	mock.MatchExpectationsInOrder(true)
	metAtCleanup(t, mock)
	t.Cleanup(func() { client.Close() })
	return mockedNode{
		pool: goredis.NewPool(client),
		expect: func(s step) {
			expect[*redismock.ExpectedCmd, *redismock.ExpectedString](mock, s)
		},
	}
}
