package mocktest

import (
	"testing"

	"github.com/go-redis/redismock/v8"

	goredis "github.com/go-redlock/redsync/redis/goredis/v8"
)

// newNodeV8 returns a node of redis/goredis/v8, the module of its own,
// over a redismock/v8 client.
func newNodeV8(t *testing.T) mockedNode {
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
