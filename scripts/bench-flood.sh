#!/usr/bin/env bash
# bench-flood.sh — siplb's edge defences under a flood (`make bench-flood`).
#
# sipecho backends on 127.0.0.1, siplb in front of them with its admin
# listener, then three phases, each bracketed by snapshots of siplb's
# /metrics, sipecho's counters (SIGUSR1), siplb's CPU (/proc/PID/stat),
# /proc/net/snmp and /proc/net/udp (the kernel's drops at siplb's sockets):
#   baseline   sipload calls, open loop at RATE/s for DURATION, from 127.0.0.1;
#   flood      the same calls while sipflood floods siplb from 127.0.0.2…
#              (FLOOD_SOURCES addresses; it starts FLOOD_LEAD seconds before
#              the calls and lasts until they are done);
#   floodonly  sipflood alone for FLOOD_ONLY.
# floodreport then writes report.json and report.md (printed) into
# benchmarks/results/flood-RUN/: legitimate success and p99 with and without
# the flood, the share of the flood that reached the backends (target
# ≤ 1 %), siplb's CPU per dropped datagram (flood only) against per forwarded
# one (calls only), and the siplb_* counters each figure was taken from.
# Every process is started here and stopped by its PID; everything runs on
# 127.0.0.1-127.0.0.9 and is bounded in time: about 40 s with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
RATE=${RATE:-200}                 # legitimate calls per second (open loop)
DURATION=${DURATION:-10}          # seconds of calls, per phase with calls
FLOOD_ONLY=${FLOOD_ONLY:-5}       # seconds of the flood-only phase
FLOOD_LEAD=${FLOOD_LEAD:-1}       # seconds the flood runs before the calls start
FLOOD_SOURCES=${FLOOD_SOURCES:-8} # flood source addresses, from 127.0.0.2
FLOOD_MIX=${FLOOD_MIX:-invite,register,garbage,scanner} # sipflood -mix
FLOOD_RATE=${FLOOD_RATE:-0}       # flood messages per second over all sources; 0: as fast as it can
FLOOD_PROCS=${FLOOD_PROCS:-1}     # GOMAXPROCS of sipflood: the cores the attacker may take
BACKENDS=${BACKENDS:-3}           # sipecho sockets
SOCKETS=${SOCKETS:-4}             # sipload's sockets
LOOPS=${LOOPS:-}                  # siplb --loops; empty: siplb's default (one per core)
SIPLB_ARGS=${SIPLB_ARGS:-}        # more siplb flags (e.g. --config FILE)
PORT_BASE=${PORT_BASE:-27060}     # siplb +0, its admin +1, sipecho +10…
RESULTS=${RESULTS:-benchmarks/results}

for v in RATE DURATION FLOOD_ONLY FLOOD_LEAD FLOOD_SOURCES FLOOD_PROCS BACKENDS SOCKETS PORT_BASE; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench-flood: $v=${!v}: want a whole number" >&2; exit 2; }
done
for b in siplb sipecho sipload sipflood floodreport; do
	[ -x "$BIN/$b" ] || { echo "bench-flood: $BIN/$b missing: run make build" >&2; exit 2; }
done
if [ "$FLOOD_SOURCES" -lt 1 ] || [ "$FLOOD_SOURCES" -gt 250 ]; then
	echo "bench-flood: FLOOD_SOURCES=$FLOOD_SOURCES: 1-250 (127.0.0.2 on)" >&2
	exit 2
fi

out="$RESULTS/flood-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
rundir=$(mktemp -d "${TMPDIR:-/tmp}/siplb-bench-flood.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$rundir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*"; }
warn() { printf 'bench-flood: %s\n' "$*" | tee -a "$out/warnings.txt" >&2; }

h=127.0.0.1
lb="$h:$PORT_BASE"
admin="$h:$((PORT_BASE + 1))"
be=()
for i in $(seq 0 $((BACKENDS - 1))); do be+=("$h:$((PORT_BASE + 10 + i))"); done

{
	echo "date: $(date -u +%FT%TZ)"
	echo "host: $(uname -srm)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "cores: $(nproc)"
	echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, at start)"
	echo "siplb: $("$BIN/siplb" --version 2>&1 | head -1)"
	echo "settings: RATE=$RATE DURATION=$DURATION FLOOD_ONLY=$FLOOD_ONLY FLOOD_LEAD=$FLOOD_LEAD FLOOD_SOURCES=$FLOOD_SOURCES FLOOD_MIX=$FLOOD_MIX FLOOD_RATE=$FLOOD_RATE FLOOD_PROCS=$FLOOD_PROCS BACKENDS=$BACKENDS SOCKETS=$SOCKETS LOOPS=${LOOPS:-default} SIPLB_ARGS=\"$SIPLB_ARGS\""
} | tee "$out/machine.txt"

# ---- The backends and siplb.
echo_args=()
for b in "${be[@]}"; do echo_args+=(-listen "$b"); done
"$BIN/sipecho" -q -stats "$rundir/echo.json" "${echo_args[@]}" >"$out/sipecho.log" 2>&1 &
echo_pid=$!
pids+=("$echo_pid")

siplb_args=(--listen "udp://$lb" --admin "$admin" --log-level error)
for b in "${be[@]}"; do siplb_args+=(--backend "udp://$b"); done
[ -n "$LOOPS" ] && siplb_args+=(--loops "$LOOPS")
# shellcheck disable=SC2206 # SIPLB_ARGS is a list of flags
siplb_args+=($SIPLB_ARGS)
echo "$BIN/siplb ${siplb_args[*]}" >"$out/siplb.cmd"
"$BIN/siplb" "${siplb_args[@]}" >"$out/siplb.log" 2>&1 &
siplb_pid=$!
pids+=("$siplb_pid")

# Up when siplb answers one OPTIONS through a backend and serves /metrics
# (bounded: 10 tries).
up=0
for _ in $(seq 10); do
	sleep 0.5
	kill -0 "$siplb_pid" 2>/dev/null || break
	if "$BIN/sipload" -q -scenario options -target "$lb" -n 5 -window 1 -duration 2s -drain 1s &&
		curl -fsS --max-time 2 "http://$admin/metrics" >/dev/null 2>&1; then
		up=1
		break
	fi
done
[ "$up" = 1 ] || { warn "siplb at $lb (admin $admin) is not up (see $out/siplb.log)"; exit 1; }

hz=$(getconf CLK_TCK)
ticks() { # utime+stime of siplb (all its threads), in ticks
	local f
	f=$(sed 's/^.*) //' "/proc/$siplb_pid/stat")
	set -- $f
	echo $((${12} + ${13}))
}
echo_snap() { # file: sipecho's counters now (SIGUSR1 rewrites its -stats file)
	local i
	rm -f "$rundir/echo.json"
	kill -USR1 "$echo_pid"
	for i in $(seq 100); do
		[ -f "$rundir/echo.json" ] && { cp "$rundir/echo.json" "$1"; return 0; }
		sleep 0.05
	done
	warn "sipecho wrote no counters within 5 s of SIGUSR1"
}
declare -A t0=() s0=()
begin() { # phase: the 'before' snapshots
	curl -fsS --max-time 5 "http://$admin/metrics" >"$out/$1.metrics.0" || warn "$1: no /metrics before"
	echo_snap "$out/$1.echo.0.json"
	cp /proc/net/snmp "$out/$1.snmp.0"
	cat /proc/net/udp /proc/net/udp6 >"$out/$1.udp.0" 2>/dev/null || true
	t0[$1]=$(ticks)
	s0[$1]=$(date +%s.%N)
}
end() { # phase: the 'after' snapshots
	local t1 s1
	t1=$(ticks)
	s1=$(date +%s.%N)
	cp /proc/net/snmp "$out/$1.snmp.1"
	cat /proc/net/udp /proc/net/udp6 >"$out/$1.udp.1" 2>/dev/null || true
	curl -fsS --max-time 5 "http://$admin/metrics" >"$out/$1.metrics.1" || warn "$1: no /metrics after"
	echo_snap "$out/$1.echo.1.json"
	awk -v a="${t0[$1]}" -v b="$t1" -v hz="$hz" -v x="${s0[$1]}" -v y="$s1" \
		'BEGIN { printf "%d %d %d %.4f\n", a, b, hz, y - x }' >"$out/$1.cpu"
}
calls() { # phase: the legitimate load, bounded by -duration, its drain and timeout
	timeout $((DURATION + 30)) "$BIN/sipload" -q -scenario call -target "$lb" -rate "$RATE" \
		-duration "${DURATION}s" -sockets "$SOCKETS" -json "$out/$1.sipload.json" ||
		warn "$1: not every call completed (see $1.sipload.json)"
}
flood_pid=
flood() { # phase seconds: sipflood in the background
	GOMAXPROCS=$FLOOD_PROCS timeout $(($2 + 30)) "$BIN/sipflood" -q -target "$lb" -sources "$FLOOD_SOURCES" \
		-mix "$FLOOD_MIX" -rate "$FLOOD_RATE" -duration "${2}s" -json "$out/$1.sipflood.json" >"$out/$1.sipflood.log" 2>&1 &
	flood_pid=$!
	pids+=("$flood_pid")
}
flood_wait() { # phase
	wait "$flood_pid" || warn "$1: sipflood failed (see $1.sipflood.log)"
}

say "baseline: calls at $RATE/s for ${DURATION}s"
begin baseline
calls baseline
end baseline
sleep 1

# The flood covers the calls' whole run: lead, duration, and sipload's
# 2 s drain.
frate="$FLOOD_RATE/s"
[ "$FLOOD_RATE" = 0 ] && frate="as fast as it can"
say "flood: the same calls beside sipflood ($FLOOD_SOURCES sources, mix $FLOOD_MIX, $frate, GOMAXPROCS=$FLOOD_PROCS)"
begin flood
flood flood $((FLOOD_LEAD + DURATION + 2))
sleep "$FLOOD_LEAD"
calls flood
flood_wait flood
end flood
sleep 1

say "floodonly: sipflood alone for ${FLOOD_ONLY}s"
begin floodonly
flood floodonly "$FLOOD_ONLY"
flood_wait floodonly
end floodonly

kill -0 "$siplb_pid" 2>/dev/null || warn "siplb exited during the run (see $out/siplb.log)"
say "report"
"$BIN/floodreport" -dir "$out"
echo "results: $out"
