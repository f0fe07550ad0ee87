#!/usr/bin/env bash
# connmem.sh: siplb's memory per idle inbound connection, over TCP and TLS
# (see benchmarks/README.md). For each transport it starts siplb with one
# listener of that transport in front of one UDP sipecho, reads siplb's VmRSS
# from /proc, opens N idle connections to it from one connhold process (the
# machine caps a process at 20,000 open files, so the clients live apart
# from siplb), reads VmRSS again once all are open, and prints
# (after - before) / N. Every process is started here and stopped by its
# PID; every wait is bounded; traffic stays on 127.0.0.1.
#
#   make build && scripts/connmem.sh
#   N=2000 TRANSPORTS=tcp scripts/connmem.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
N=${N:-10000}                      # idle connections per transport
TRANSPORTS=${TRANSPORTS:-tcp tls}  # which listeners to measure
LOOPS=${LOOPS:-1}                  # siplb event loops
SETTLE=${SETTLE:-2}                # seconds between the last connection and the reading
OPEN_TIMEOUT=${OPEN_TIMEOUT:-120}  # seconds connhold may take to open all N
PORT_BASE=${PORT_BASE:-29060}      # siplb tcp +0, tls +1, its udp leg +2, sipecho +10
READ_SIZE=${READ_SIZE:-}           # siplb's streams.read_size; empty: its default
GO=${GO:-go}

for b in siplb sipecho sipload connhold; do
	[ -x "$BIN/$b" ] || { echo "connmem: $BIN/$b missing; run make build" >&2; exit 1; }
done
rundir=$(mktemp -d "${TMPDIR:-/tmp}/siplb-connmem.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$rundir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

h=127.0.0.1
be="$h:$((PORT_BASE + 10))"
declare -A port=([tcp]=$((PORT_BASE + 0)) [tls]=$((PORT_BASE + 1)))

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
stop() { # pid: TERM, then wait for it (bounded), then KILL
	local p=$1 i
	kill -TERM "$p" 2>/dev/null || return 0
	for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

# siplb sends to the UDP backend from a UDP leg of its own.
udpleg="udp://$h:$((PORT_BASE + 2))"

# A throwaway self-signed certificate for the TLS listener.
cert() {
	if command -v openssl >/dev/null; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
			-subj "/CN=$h" -addext "subjectAltName=IP:$h" \
			-keyout "$rundir/key.pem" -out "$rundir/cert.pem" >/dev/null 2>&1
	else
		# The standard library's generator, run as a helper.
		(cd "$rundir" && $GO run "$($GO env GOROOT)/src/crypto/tls/generate_cert.go" \
			--host "$h" --ecdsa-curve P256 --duration 24h >/dev/null 2>&1)
	fi
}

"$BIN/sipecho" -q -listen "$be" >"$rundir/sipecho.log" 2>&1 &
pids+=($!)

printf '%s\n' "siplb memory per idle inbound connection: $N connections from one connhold process, $(nproc) cores, $(uname -sr), $("$BIN/siplb" --version 2>&1 | head -1)"
printf '%-9s %12s %12s %10s %16s\n' transport "rss before" "rss after" "fds added" "bytes/connection"
for tr in $TRANSPORTS; do
	listen="$tr://$h:${port[$tr]}"
	tlsblock=""
	if [ "$tr" = tls ]; then
		cert || { echo "connmem: no certificate (openssl or go needed); tls skipped" >&2; continue; }
		tlsblock="    tls: {cert_file: $rundir/cert.pem, key_file: $rundir/key.pem}"
	fi
	# Idle expiry above the measurement, and room for N connections from one IP.
	cat >"$rundir/siplb-$tr.yaml" <<-EOF
		listen:
		  - address: $listen
		$tlsblock
		  - address: $udpleg
		pools:
		  - name: mem
		    backends:
		      - address: udp://$be
		    health:
		      disabled: true
		engine:
		  loops: $LOOPS
		streams:
		  max_connections: $((N + 1000))
		  max_per_ip: $((N + 1000))
		  idle_min: 10m
		  idle_max: 10m
		  ${READ_SIZE:+read_size: $READ_SIZE}
		log:
		  level: warn
	EOF
	"$BIN/siplb" --config "$rundir/siplb-$tr.yaml" >"$rundir/siplb-$tr.log" 2>&1 &
	lb=$!
	pids+=("$lb")
	# Up when it answers an OPTIONS (TCP; over TLS, when the port accepts).
	up=0
	for _ in $(seq 50); do
		if [ "$tr" = tcp ]; then
			"$BIN/sipload" -q -transport tcp -scenario options -target "$h:${port[$tr]}" -n 1 -window 1 \
				-duration 1s -drain 1s >/dev/null 2>&1 && { up=1; break; }
		elif "$BIN/connhold" -tls -target "$h:${port[$tr]}" -n 1 -hold 0 -timeout 2s >/dev/null 2>&1; then
			up=1
			break
		fi
		kill -0 "$lb" 2>/dev/null || break
		sleep 0.2
	done
	if [ "$up" != 1 ]; then
		echo "connmem: siplb with $listen did not come up:" >&2
		cat "$rundir/siplb-$tr.log" >&2
		stop "$lb"
		continue
	fi
	sleep "$SETTLE"
	before=$(rss_kb "$lb")
	fd0=$(fds "$lb")
	flags=()
	[ "$tr" = tls ] && flags=(-tls)
	"$BIN/connhold" "${flags[@]}" -target "$h:${port[$tr]}" -n "$N" -hold "$((OPEN_TIMEOUT + 60))s" \
		-timeout "${OPEN_TIMEOUT}s" >"$rundir/connhold-$tr.out" 2>&1 &
	ch=$!
	pids+=("$ch")
	opened=0
	for _ in $(seq $((OPEN_TIMEOUT * 10))); do
		grep -q '^open ' "$rundir/connhold-$tr.out" && { opened=1; break; }
		kill -0 "$ch" 2>/dev/null || break
		sleep 0.1
	done
	if [ "$opened" != 1 ]; then
		echo "connmem: connhold did not open $N $tr connections:" >&2
		cat "$rundir/connhold-$tr.out" >&2
		stop "$ch"
		stop "$lb"
		continue
	fi
	sleep "$SETTLE"
	after=$(rss_kb "$lb")
	fd1=$(fds "$lb")
	stop "$ch"
	stop "$lb"
	awk -v tr="$tr" -v a="$before" -v b="$after" -v f=$((fd1 - fd0)) -v n="$N" \
		'BEGIN { printf "%-9s %9d kB %9d kB %10d %16.0f\n", tr, a, b, f, (b - a) * 1024 / n }'
done
