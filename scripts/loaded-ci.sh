#!/usr/bin/env bash
# The evidence that the test command stays green on a busy machine: runs
# .ci/run on fresh clones of HEAD, N1 times with one CPU-bound process
# beside it, then N2 times with two, one run after another, and prints one
# line per run (status, seconds, the test command's last line).
#
#   scripts/loaded-ci.sh        # 5 runs with one busy process, 3 with two
#   scripts/loaded-ci.sh 1 0    # one run with one busy process
#
# Each run takes about 3 minutes on 2 cores.
set -u

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
n1=${1:-5}
n2=${2:-3}
echo "HEAD $(git rev-parse --short HEAD)"

# run BUSY N: one run of .ci/run on a fresh clone, beside BUSY CPU-bound
# processes.
run() {
	local busy=$1 n=$2 dir log pids=() start rc
	dir=$(mktemp -d)
	log=$(mktemp)
	git clone -q "$repo" "$dir/repo"
	for _ in $(seq 1 "$busy"); do
		setsid sha256sum /dev/zero >/dev/null 2>&1 &
		pids+=($!)
	done
	start=$SECONDS
	(cd "$dir/repo" && bash .ci/run >"$log" 2>&1)
	rc=$?
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
	echo "busy=$busy run=$n status=$rc $((SECONDS - start))s: $(tail -1 "$log")"
	if [ "$rc" != 0 ]; then
		echo "  log kept: $log"
	else
		rm -f "$log"
	fi
	rm -rf "$dir"
}

for n in $(seq 1 "$n1"); do run 1 "$n"; done
for n in $(seq 1 "$n2"); do run 2 "$n"; done
