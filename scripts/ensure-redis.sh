#!/usr/bin/env bash
# Makes sure redis-server is installed; the tests start their own throwaway
# servers (internal/redistest) and need nothing to be running.
#
# Exit status 0 when redis-server is on PATH (installing it with apt-get when
# running as root on Debian/Ubuntu), 1 otherwise.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
	exit 0
fi

msg="redis-server is required for the tests: install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis)"

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "ensure-redis: redis-server not found; installing it with apt-get" >&2
	# If the package starts a system redis service, that is harmless: the
	# tests never use it.
	if apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; then
		hash -r
		if command -v redis-server >/dev/null 2>&1; then
			echo "ensure-redis: installed $(redis-server --version)" >&2
			exit 0
		fi
	fi
	echo "ensure-redis: installing redis-server with apt-get failed" >&2
fi

echo "$msg" >&2
exit 1
