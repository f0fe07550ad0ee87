#!/usr/bin/env bash
# deps.sh installs what the tests need on a fresh Debian machine: sipp (Debian's
# sip-tester) for the interop tests, chromium for the WebSocket browser test,
# and the Go modules of both modules.
set -euo pipefail

if ! command -v sipp >/dev/null 2>&1; then
	echo "deps: sipp not found, installing Debian's sip-tester" >&2
	SUDO=""
	if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
	if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq sip-tester; } >&2; then
		echo "deps: could not install sip-tester (sipp); the interop tests need it" >&2
		exit 1
	fi
fi
command -v sipp >/dev/null 2>&1 || { echo "deps: sipp still missing after install" >&2; exit 1; }

# chromium runs the WebSocket browser test (cmd/siplb/ws_e2e_test.go).
if ! command -v chromium >/dev/null 2>&1; then
	echo "deps: chromium not found, installing Debian's chromium" >&2
	SUDO=""
	if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
	if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium; } >&2; then
		echo "deps: could not install chromium; the WebSocket browser test needs it (SIPLB_NO_BROWSER=1 skips it)" >&2
		exit 1
	fi
fi
command -v chromium >/dev/null 2>&1 || { echo "deps: chromium still missing after install" >&2; exit 1; }

go mod download
(cd benchmarks && go mod download)
