# Tasks for developing redsync. redis-server must be installed (make test
# installs it with apt-get when run as root on Debian/Ubuntu); the tests start
# their own throwaway servers on free loopback ports.

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

.PHONY: test minversions bench bench-handoff bench-handoff-procs bench-par bench-prim lint demo chaos

# Vet and race-test every module, the short fault-injection table included;
# compile and test the benchmark module (see CONTRIBUTING.md).
test:
	bash scripts/test.sh

# Vet and test every module at the oldest Go and driver versions its
# go.mod states (scripts/minversions.sh; not part of make test yet).
minversions:
	bash scripts/minversions.sh

# Run the benchmarks and print the comparison table.
bench:
	bash scripts/ensure-redis.sh && cd benchmarks && go run ./cmd/benchtable

# Contended hand-off (16 goroutines, one key, 5 nodes): this library, redsync
# v4 and rueidislock side by side; see benchmarks/cmd/handoff.
bench-handoff:
	bash scripts/ensure-redis.sh && cd benchmarks && go run ./cmd/handoff -libs redlock,redlock-redigo,redsyncv4,rueidislock -rounds 5 -duration 3s

# Hand-off between OS processes (issue #17): 8, then 16 processes, each
# with one goroutine and a client of its own (for this library a Redsync of
# its own), this library and redsync v4 in turn on the same 5 nodes, five
# interleaved rounds; see benchmarks/README.md.
bench-handoff-procs:
	bash scripts/ensure-redis.sh && cd benchmarks && \
	go run ./cmd/handoff -procs 8 -libs redlock,redsyncv4 -rounds 5 -duration 3s && \
	go run ./cmd/handoff -procs 16 -libs redlock,redsyncv4 -rounds 5 -duration 3s

# Throughput of concurrent Lock+Unlock on different keys (64 goroutines,
# the par workload of benchmarks/cmd/lockbench), with Redis CPU per lock:
# 5 nodes, then 1, each library in turn within each round.
bench-par:
	bash scripts/ensure-redis.sh && cd benchmarks && \
	go run ./cmd/lockbench -nodes 5 -libs redlock-batched,redlock-redigo,redlock,redsyncv4,redsyncv4-redigo && \
	go run ./cmd/lockbench -nodes 1 -libs redlock-batched,redlock-redigo,redislock,rueidislock,redsyncv4

# The RWMutex and the Semaphore against the Mutex on the same 5 nodes:
# uncontended ratios, then 16 goroutines on one name (readers against
# writers); see benchmarks/cmd/primbench.
bench-prim:
	bash scripts/ensure-redis.sh && cd benchmarks && go run ./cmd/primbench -rounds 7 -iterations 2000 -duration 2s

# gofmt (must list nothing), go vet and staticcheck.
lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

# Run the quickstart example against throwaway redis servers.
demo:
	bash scripts/ensure-redis.sh && go run ./examples/quickstart

# Long fault-injection tests (kills, pauses and restarts of redis servers):
# every row of the fault table and its fencing, local hand-off, multi-key
# (TestChaosMulti), RWMutex and Semaphore variants,
# at least 10,000 acquisitions per row: well over an hour on 2 cores (the
# rows of TestChaos alone took about an hour, see docs/RELIABILITY.md). Built
# without -race, which would slow the workers 2-3x; make test runs a few of
# the rows briefly, and the canaries, with it.
chaos:
	bash scripts/ensure-redis.sh && go test -count=1 -timeout 4h -v -run TestChaos ./internal/chaos/ -args -long -chaos.report=chaos-report.md
