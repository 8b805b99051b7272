module github.com/go-redlock/redsync/redis/valkeygo

go 1.24.9

replace github.com/go-redlock/redsync => ../..

require (
	github.com/go-redlock/redsync v0.0.0
	github.com/valkey-io/valkey-go v1.0.72
	github.com/valkey-io/valkey-go/valkeycompat v1.0.72
)

require (
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.39.0 // indirect
)
