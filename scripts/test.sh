#!/usr/bin/env bash
# Runs vet and the race-enabled tests of the root module, then vets and tests
# the benchmark module (if present) without running its benchmarks.
# Extra arguments are passed to the root module's go test, e.g.
#   scripts/test.sh -run TestLock -v
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-redis.sh

echo "==> go vet ./..."
go vet ./...
echo "==> go test -race ./..."
go test -race -count=1 -timeout 12m ./... "$@"

if [ -f benchmarks/go.mod ]; then
	echo "==> benchmarks: go vet and go test"
	(cd benchmarks && go vet ./... && go test -race -count=1 -run . -bench='^$' ./...)
fi
