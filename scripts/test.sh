#!/usr/bin/env bash
# Runs vet and the race-enabled tests of the root module, then vets and tests
# the benchmark module (if present) without running its benchmarks, and every
# other nested module.
# Extra arguments are passed to the root module's go test, e.g.
#   scripts/test.sh -run TestLock -v
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-redis.sh

echo "==> go vet ./..."
go vet ./...
# One package at a time: the integration and fault-injection tests start
# many redis-server processes and time their per-node timeouts; on a 2-core
# machine, packages running side by side starve each other.
echo "==> go test -race ./..."
for pkg in $(go list ./...); do
	go test -race -count=1 -timeout 12m "$pkg" "$@"
done

if [ -f benchmarks/go.mod ]; then
	echo "==> benchmarks: go vet and go test"
	(cd benchmarks && go vet ./... && go test -race -count=1 -run . -bench='^$' ./...)
fi

# Nested modules (adapters with dependencies of their own, such as
# redis/rueidis): vet and race-test each.
while IFS= read -r mod; do
	dir="$(dirname "$mod")"
	echo "==> $dir: go vet and go test -race"
	(cd "$dir" && go vet ./... && go test -race -count=1 ./...)
done < <(find . -name go.mod -not -path ./go.mod -not -path ./benchmarks/go.mod | sort)
