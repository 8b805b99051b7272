#!/usr/bin/env bash
# The test command (make test, .ci/run): vet and race-test the root module,
# the short fault-injection table of internal/chaos included; vet the
# benchmark module and run its tests (not its benchmarks); vet and
# race-test every other module (otel, the adapters with dependencies of
# their own, redsynctest). Every step runs even when an earlier one failed;
# the last line says whether all passed.
#
# Tests run side by side: the packages of a module (go test's default -p,
# the number of CPUs), and the other modules, one after the other, while
# the root module's tests run. Each test starts redis-server processes of
# its own (internal/redistest) and shares none, and no test depends on the
# machine being idle. The root module's output comes as it runs; the other
# modules' output follows it.
#
# Extra arguments go to the root module's go test, e.g.
#   scripts/test.sh -run TestLock -v
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/ensure-redis.sh || exit 1

start=$SECONDS
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()

# step NAME COMMAND...: runs COMMAND, and records NAME when it fails.
step() {
	local name=$1
	shift
	echo "==> $name"
	if ! "$@"; then
		failed+=("$name")
	fi
}

# The steps of the other modules, in order: "NAME|DIR|COMMAND".
others=()
if [ -f benchmarks/go.mod ]; then
	others+=("benchmarks: go vet|benchmarks|go vet ./...")
	others+=("benchmarks: go test|benchmarks|go test -race -count=1 -run . -bench='^\$' ./...")
fi
while IFS= read -r mod; do
	dir="$(dirname "${mod#./}")"
	others+=("$dir: go vet|$dir|go vet ./...")
	others+=("$dir: go test -race|$dir|go test -race -count=1 -timeout 12m ./...")
done < <(find . -name go.mod -not -path ./go.mod -not -path ./benchmarks/go.mod | sort)

# Run them in the background, each into a log of its own and a file with
# its exit status.
(
	for i in "${!others[@]}"; do
		IFS='|' read -r _ dir cmd <<<"${others[$i]}"
		(cd "$dir" && eval "$cmd") >"$logs/$i.log" 2>&1
		echo $? >"$logs/$i.rc"
	done
) &
background=$!

# roottest runs the root module's tests, keeping a copy of their output
# for the summary at the end.
roottest() {
	go test -race -count=1 -timeout 12m ./... "$@" 2>&1 | tee "$logs/root.log"
	return "${PIPESTATUS[0]}"
}

step "go vet ./..." go vet ./...
step "go test -race ./..." roottest "$@"

wait "$background"
for i in "${!others[@]}"; do
	IFS='|' read -r name _ _ <<<"${others[$i]}"
	echo "==> $name"
	cat "$logs/$i.log"
	if [ "$(cat "$logs/$i.rc" 2>/dev/null)" != 0 ]; then
		failed+=("$name")
	fi
done

elapsed=$((SECONDS - start))
if [ ${#failed[@]} -gt 0 ]; then
	# The root module's output is long (a timeout prints every goroutine):
	# repeat what failed, and the tests that were running at a timeout,
	# where the end of the log shows them.
	if grep -qE '^(panic: |--- FAIL|FAIL)' "$logs/root.log" 2>/dev/null; then
		echo "==> the root module's failures, again"
		grep -E -A12 '^panic: test timed out' "$logs/root.log"
		grep -E '^\s*--- FAIL|^panic: |^FAIL' "$logs/root.log" | grep -v '^panic: test timed out'
	fi
	echo "FAIL: scripts/test.sh, after ${elapsed}s; failed steps:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "ok: scripts/test.sh, every step passed in ${elapsed}s"
