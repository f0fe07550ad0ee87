#!/usr/bin/env bash
# demo.sh: siplb on its embedded default configuration in front of three
# sipecho backends on loopback, and bounded bursts of calls through it in
# three phases: all backends up; 127.0.0.1:5071 drained through
# `siplb ctl`; undrained again. A table shows the new calls each backend
# took per phase (the drained one none), then SIGTERM drains siplb and it
# exits 0. Every process started here is stopped by its PID.
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
"$BIN/sipecho" -q -listen 127.0.0.1:5070 -listen 127.0.0.1:5071 -listen 127.0.0.1:5072 -stats "$tmp/echo.json" &
echo_pid=$!
pids+=($echo_pid)
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

# INVITEs each backend has answered, from sipecho's counters (SIGUSR1
# writes them to $tmp/echo.json without stopping it).
snapshot() { # name: keep the counts as $tmp/$1.json
	rm -f "$tmp/echo.json"
	kill -USR1 "$echo_pid"
	for _ in $(seq 50); do [ -s "$tmp/echo.json" ] && break; sleep 0.1; done
	cp "$tmp/echo.json" "$tmp/$1.json"
}
invites() { # file address: the INVITEs that address answered
	awk -v a="\"$2\":" '
		index($0, a) { f = 1 }
		f && /"INVITE"/ { gsub(/[^0-9]/, "", $2); print $2; found = 1; exit }
		f && /}/ { print 0; found = 1; exit }
		END { if (!found) print 0 }' "$1"
}

ctl() { "$BIN/siplb" ctl --admin 127.0.0.1:9060 "$@"; }

third=$((CALLS / 3))
phase() { # name calls: a bounded burst of calls through siplb, then a snapshot
	echo "== $2 calls (INVITE, 100/180/200, ACK, BYE, 200) through udp://127.0.0.1:5060"
	"$BIN/sipload" -target 127.0.0.1:5060 -scenario call -n "$2" -window "$WINDOW" -duration 60s -progress || status=$?
	snapshot "$1"
}

status=0
snapshot start
phase up "$third"

echo "== drain 127.0.0.1:5071 (siplb ctl): no new calls for it, its calls in progress go on"
ctl drain demo 127.0.0.1:5071
ctl list
phase drained "$third"

echo "== undrain 127.0.0.1:5071"
ctl undrain demo 127.0.0.1:5071
ctl list
phase undrained "$((CALLS - 2 * third))"

echo "== new calls per backend and phase (sipecho's counts of INVITE)"
printf '%-16s %8s %8s %10s %7s\n' backend up drained undrained total
fail=0
prev=start
for port in 5070 5071 5072; do
	a=127.0.0.1:$port
	s=$(invites "$tmp/start.json" "$a")
	u=$(invites "$tmp/up.json" "$a")
	d=$(invites "$tmp/drained.json" "$a")
	n=$(invites "$tmp/undrained.json" "$a")
	printf '%-16s %8d %8d %10d %7d\n' "$a" $((u - s)) $((d - u)) $((n - d)) $((n - s))
	if [ "$port" = 5071 ] && [ $((d - u)) -ne 0 ]; then fail=1; fi
	if [ "$port" = 5071 ] && [ $((n - d)) -eq 0 ]; then fail=1; fi
done
if [ "$fail" -ne 0 ]; then
	echo "demo: FAILED: 127.0.0.1:5071 took new calls while drained, or none after the undrain" >&2
	exit 1
fi

echo "== siplb counters (http://127.0.0.1:9060/metrics)"
exec 3<>/dev/tcp/127.0.0.1/9060
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
grep -E '^siplb_(requests|responses)_|^siplb_drops_total.* [1-9]' <&3 || true
exec 3<&-

echo "== SIGTERM: siplb drains (new dialogs 503, calls in progress go on) and exits 0"
kill -TERM "$siplb_pid"
siplb_status=0
wait "$siplb_pid" || siplb_status=$?
pids=("$echo_pid")
if [ "$siplb_status" -ne 0 ]; then
	echo "demo: FAILED: siplb exited $siplb_status after SIGTERM" >&2
	exit 1
fi
echo "siplb exited 0"

if [ "$status" -ne 0 ]; then
	echo "demo: FAILED: not every call completed" >&2
	exit "$status"
fi
echo "demo: all $CALLS calls completed; 127.0.0.1:5071 took none while drained"
