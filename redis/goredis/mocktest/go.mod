module github.com/go-redlock/redsync/redis/goredis/mocktest

go 1.25.0

replace github.com/go-redlock/redsync => ../../..

require (
	github.com/go-redis/redismock/v8 v8.11.5
	github.com/go-redis/redismock/v9 v9.2.0
	github.com/go-redlock/redsync v0.0.0
	github.com/go-redlock/redsync/redis/goredis/v8 v8.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/go-redis/redis/v8 v8.11.5 // indirect
	github.com/redis/go-redis/v9 v9.16.0 // indirect
)

replace github.com/go-redlock/redsync/redis/goredis/v8 => ../v8
