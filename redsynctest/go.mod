module github.com/go-redlock/redsync/redsynctest

go 1.24.0

replace github.com/go-redlock/redsync => ..

require (
	github.com/alicebob/miniredis/v2 v2.40.0
	github.com/go-redlock/redsync v0.0.0
	github.com/redis/go-redis/v9 v9.16.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dgryski/go-rendezvous v0.0.0-20200823014737-9f7001d12a5f // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.28.0 // indirect
)
