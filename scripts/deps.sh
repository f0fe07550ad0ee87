#!/usr/bin/env bash
# deps.sh installs what the tests need on a fresh Debian machine: sipp (Debian's
# sip-tester) for the interop tests, chromium for the browser tests (the
# status page and the WebSocket legs), and the Go modules of both modules. It
# installs only what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
UPDATED=""

# need CMD PACKAGE WHY installs Debian's PACKAGE when CMD is not on PATH;
# apt's output is shown only when the install fails.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "deps: $1 not found, installing Debian's $2" >&2
	local log
	log=$(mktemp)
	if ! { { [ -n "$UPDATED" ] || $SUDO apt-get update -qq; } &&
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$2"; } >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		echo "deps: could not install $2 ($1), needed by $3" >&2
		exit 1
	fi
	rm -f "$log"
	UPDATED=1
	command -v "$1" >/dev/null 2>&1 || { echo "deps: $1 still missing after installing $2" >&2; exit 1; }
}

need sipp sip-tester "the interop tests"
need chromium chromium "the browser tests (cmd/siplb/ui_test.go, ws_e2e_test.go)"

go mod download
(cd benchmarks && go mod download)
