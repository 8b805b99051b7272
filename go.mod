module github.com/go-redlock/redsync

go 1.24.0

require (
	github.com/gomodule/redigo v1.8.8
	github.com/redis/go-redis/v9 v9.16.0
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.28.0
	pgregory.net/rapid v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
)
