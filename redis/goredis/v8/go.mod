module github.com/go-redlock/redsync/redis/goredis/v8

go 1.24.0

replace github.com/go-redlock/redsync => ../../..

require (
	github.com/go-redis/redis/v8 v8.5.0
	github.com/go-redlock/redsync v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	go.opentelemetry.io/otel v0.16.0 // indirect
)
