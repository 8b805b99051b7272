module github.com/go-redlock/redsync/redis/rueidis

go 1.24.0

require (
	github.com/go-redlock/redsync v0.0.0
	github.com/redis/rueidis v1.0.59
)

require (
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.31.0 // indirect
)

replace github.com/go-redlock/redsync => ../..
