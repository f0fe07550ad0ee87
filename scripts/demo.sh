#!/usr/bin/env bash
# demo.sh: siplb on its embedded default configuration in front of three
# sipecho backends on loopback, a bounded burst of calls through it, a table
# of the outcome. Every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
CALLS=${CALLS:-3000}
WINDOW=${WINDOW:-50}
tmp=$(mktemp -d)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

wait_tcp() { # host port: until the admin listener answers, at most 5 s
	for _ in $(seq 50); do
		if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "demo: nothing listens on $1:$2" >&2
	return 1
}

echo "== three backends (sipecho) on 127.0.0.1:5070-5072"
"$BIN/sipecho" -listen 127.0.0.1:5070 -listen 127.0.0.1:5071 -listen 127.0.0.1:5072 -stats "$tmp/echo.json" &
pids+=($!)
# Backends first: siplb's first health probes must find them answering.
for port in 5070 5071 5072; do
	for try in $(seq 50); do
		if "$BIN/sipload" -q -scenario options -target "127.0.0.1:$port" -n 1 -timeout 100ms -drain 0s -duration 1s; then break; fi
		if [ "$try" = 50 ]; then echo "demo: sipecho does not answer on $port" >&2; exit 1; fi
	done
done
echo "== siplb on its embedded default configuration (siplb --print-default-config)"
# Its generated branch secret goes to the demo's temporary directory, not /var/lib/siplb.
STATE_DIRECTORY="$tmp/state" "$BIN/siplb" --log-level warn &
siplb_pid=$!
pids+=($siplb_pid)
wait_tcp 127.0.0.1 9060

echo "== $CALLS calls (INVITE, 100/180/200, ACK, BYE, 200) through udp://127.0.0.1:5060"
status=0
"$BIN/sipload" -target 127.0.0.1:5060 -scenario call -n "$CALLS" -window "$WINDOW" -duration 60s -progress || status=$?

echo "== siplb counters (http://127.0.0.1:9060/metrics)"
exec 3<>/dev/tcp/127.0.0.1/9060
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
grep -E '^siplb_(requests|responses)_|^siplb_drops_total.* [1-9]' <&3 || true
exec 3<&-

if [ "$status" -ne 0 ]; then
	echo "demo: FAILED: not every call completed" >&2
	exit "$status"
fi
echo "demo: all $CALLS calls completed"
