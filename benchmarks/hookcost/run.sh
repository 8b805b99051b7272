#!/usr/bin/env bash
# Compares an uncontended Lock+Unlock without an observer in an older
# version of the library and in the working tree, in one process (see
# paired_test.go): on memory nodes (the library's own work) and on five
# redis-servers. Prints go test's output, then the median over the runs of
# each benchmark's new/old ratio.
#
#   bash benchmarks/hookcost/run.sh [BASE_COMMIT [NEW_COMMIT [go test flags...]]]
#
# BASE_COMMIT defaults to d695647, the last commit before the observer
# hooks; NEW_COMMIT to the working tree ("-" for it too); the flags to
# -benchtime 2s -count 10. run.sh c0a8099^ c0a8099 measures the hooks'
# commit alone; run.sh X X, a version against itself, shows the noise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
base="${1:-d695647}"
new="${2:--}"
shift 2 || shift $#
flags=("$@")
if [ ${#flags[@]} -eq 0 ]; then
	flags=(-benchtime 2s -count 10)
fi

bash "$repo/scripts/ensure-redis.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/base" "$work/cmp"

# The older tree, renamed so that both versions link into one binary.
git -C "$repo" archive "$base" | tar -x -C "$work/base"
(
	cd "$work/base"
	rm -rf benchmarks otel examples internal/chaos redis/rueidis cmd
	grep -rl 'github.com/go-redlock/redsync' --include='*.go' --include=go.mod . |
		xargs sed -i 's#github.com/go-redlock/redsync#example.com/base#g'
)

newdir="$repo"
if [ "$new" != - ]; then
	newdir="$work/new"
	mkdir -p "$newdir"
	git -C "$repo" archive "$new" | tar -x -C "$newdir"
fi

sed '1,2d' "$here/paired_test.go" >"$work/cmp/paired_test.go"
cat >"$work/cmp/go.mod" <<MOD
module example.com/base/obscmp

go 1.26.0

replace example.com/base => ../base

replace github.com/go-redlock/redsync => $newdir
MOD
cd "$work/cmp"
go mod tidy >"$work/tidy.log" 2>&1 || { cat "$work/tidy.log"; exit 1; }
go test -run '^$' -bench . "${flags[@]}" . | tee "$work/out.txt"

echo
echo "median new/old over the runs (old $base, new $new):"
awk '/^Benchmark/ {
	for (i = 3; i < NF; i++) if ($(i+1) == "new/old") r[$1] = r[$1] " " $i
} END {
	for (b in r) {
		n = split(substr(r[b], 2), v, " ")
		for (i = 2; i <= n; i++) { # insertion sort: mawk has no asort
			x = v[i] + 0
			for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j+1] = v[j]
			v[j+1] = x
		}
		m = (n % 2) ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
		printf "  %-40s %.4f (%d runs)\n", b, m, n
	}
}' "$work/out.txt" | sort
