module github.com/go-redlock/redsync/redis/goredis/v7

go 1.24.0

replace github.com/go-redlock/redsync => ../../..

require (
	github.com/go-redis/redis/v7 v7.4.0
	github.com/go-redlock/redsync v0.0.0
	go.uber.org/goleak v1.3.0
)
