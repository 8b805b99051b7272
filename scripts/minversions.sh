#!/usr/bin/env bash
# Checks the code at the oldest versions that its go.mod files state: the
# Go line and the drivers. In a temporary copy of the work tree (the
# checked-in files are never changed), for every module but benchmarks:
#
#   - its go line and its driver requirements are the floors listed below,
#     so that a `go get -u` or a tidy after a bump cannot raise them
#     unnoticed (raise a floor here, and in README's migration notes, only
#     when the code needs it);
#   - go mod tidy -diff: go.mod asks for no more and no less than the code
#     and its dependencies need;
#   - go vet: its stdversion check reports standard library calls newer
#     than the go line, and the compiler rejects language features newer
#     than it;
#   - a fast subset of the tests: the adapters' own tests (conformance,
#     lock, listener), the mock-based ones, and the otel module's.
#
# Then the go-redis v9 adapter alone at LIBRARY_GOREDIS, older than the root
# module's floor, which cmd/redsync, examples/quickstart and tls_test.go hold
# up (they set Options.DialerRetries, new in go-redis v9.16.0).
#
# The toolchain is $MINGO when set, for instance MINGO=go1.25.0 (as
# GOTOOLCHAIN: the go command runs that release, which it must have cached
# or be able to download). Otherwise it is the local go, and the go lines
# are checked by vet and the compiler only. Every step runs even when an earlier one failed; the last
# line says whether all passed.
#
#   scripts/minversions.sh
#   MINGO=go1.25.0 scripts/minversions.sh
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The floors: the go line of every module, and per module the driver
# requirements ("path version") its go.mod must state.
# The lowest go line the code allows is 1.24.0; a module whose own
# dependencies ask for more states what they ask.
GO_FLOOR=1.24.0
declare -A GO_FLOORS=(
	[redis/valkeygo]=1.24.9           # valkey-go v1.0.72
	[otel]=1.25.0                     # go.opentelemetry.io/otel v1.44.0
	[redis/goredis/mocktest]=1.25.0   # redismock
)
declare -A FLOORS=(
	[.]="github.com/redis/go-redis/v9 v9.16.0|github.com/gomodule/redigo v1.8.8"
	[redis/goredis/v7]="github.com/go-redis/redis/v7 v7.4.0"
	[redis/goredis/v8]="github.com/go-redis/redis/v8 v8.5.0"
	[redis/valkeygo]="github.com/valkey-io/valkey-go v1.0.72|github.com/valkey-io/valkey-go/valkeycompat v1.0.72"
	[redis/rueidis]="github.com/redis/rueidis v1.0.59"
	[redsynctest]="github.com/alicebob/miniredis/v2 v2.40.0|github.com/redis/go-redis/v9 v9.16.0"
	[otel]="go.opentelemetry.io/otel v1.44.0|github.com/redis/go-redis/v9 v9.16.0"
	[redis/goredis/mocktest]="github.com/go-redis/redismock/v9 v9.2.0|github.com/go-redis/redismock/v8 v8.11.5"
)
# The tests each module runs: "packages|-run pattern" (an empty pattern
# runs them all).
declare -A TESTS=(
	[.]="./redis/...|"
	[redis/goredis/v7]=".|TestConformance|TestLock|TestListener|TestMockWire|TestKeepsDeadlines"
	[redis/goredis/v8]=".|TestConformance|TestLock|TestListener|TestMockWire|TestKeepsDeadlines"
	[redis/valkeygo]=".|(TestConformance|TestLock)/DisableCache"
	[redis/rueidis]=".|(TestConformance|TestLock)/DisableCache"
	[redsynctest]=".|TestConformance"
	[otel]="./...|"
	[redis/goredis/mocktest]="./...|"
)
MODULES=(. redis/goredis/v7 redis/goredis/v8 redis/valkeygo redis/rueidis redsynctest otel redis/goredis/mocktest)
LIBRARY_GOREDIS=v9.3.0

start=$SECONDS
if [ -n "${MINGO:-}" ]; then
	export GOTOOLCHAIN=$MINGO
else
	export GOTOOLCHAIN=local
fi
echo "toolchain: $(go version 2>&1)"
[ -n "${MINGO:-}" ] || echo "  (local: the go lines are checked by vet and the compiler, not by a Go $GO_FLOOR toolchain; set MINGO=go$GO_FLOOR for that)"

bash scripts/ensure-redis.sh >/dev/null || exit 1

copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT
# The work tree as it is, without .git and ignored files.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$copy" 2>/dev/null
cd "$copy"

failed=()
# step NAME DIR COMMAND...: runs COMMAND in DIR, and records NAME when it
# fails.
step() {
	local name=$1 dir=$2
	shift 2
	echo "==> $name"
	if ! (cd "$dir" && "$@"); then
		failed+=("$name")
	fi
}

# floors DIR: checks the go line and the driver requirements of DIR's go.mod.
floors() {
	local dir=$1 ok=0 got req path want
	got=$(go mod edit -json go.mod | sed -n 's/^\t"Go": "\(.*\)",$/\1/p')
	local floor=${GO_FLOORS[$dir]:-$GO_FLOOR}
	if [ "$got" != "$floor" ]; then
		echo "$dir/go.mod: go $got, the floor is $floor"
		ok=1
	fi
	IFS='|' read -ra req <<<"${FLOORS[$dir]}"
	for r in "${req[@]}"; do
		read -r path want <<<"$r"
		got=$(go mod edit -json go.mod | grep -A1 "\"Path\": \"$path\"" | sed -n 's/.*"Version": "\(.*\)".*/\1/p')
		if [ "$got" != "$want" ]; then
			echo "$dir/go.mod: $path ${got:-missing}, the floor is $want"
			ok=1
		fi
	done
	return $ok
}

for dir in "${MODULES[@]}"; do
	IFS='|' read -r pkgs run <<<"${TESTS[$dir]}"
	step "$dir: floors" "$dir" floors "$dir"
	step "$dir: go mod tidy -diff" "$dir" go mod tidy -diff
	step "$dir: go vet" "$dir" go vet ./...
	step "$dir: go test" "$dir" go test -count=1 -timeout 5m -run "${run:-.}" "$pkgs"
done

library() {
	GOFLAGS=-mod=mod go mod edit -require=github.com/redis/go-redis/v9@$LIBRARY_GOREDIS &&
		GOFLAGS=-mod=mod go vet ./redis/goredis/... &&
		GOFLAGS=-mod=mod go test -count=1 -timeout 5m -run 'TestConformance|TestLock|TestListener' ./redis/goredis/...
}
step "go-redis $LIBRARY_GOREDIS: the redis/goredis adapter" . library

elapsed=$((SECONDS - start))
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAIL: scripts/minversions.sh, after ${elapsed}s; failed steps:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "ok: scripts/minversions.sh, every step passed in ${elapsed}s"
