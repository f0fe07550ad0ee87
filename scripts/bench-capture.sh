#!/usr/bin/env bash
# bench-capture.sh — what HEP capture costs siplb (`make bench-capture`).
#
# Three siplb side by side in front of the same three UDP sipecho: off
# (capture off), tcp (capture.hep to hepsink over TCP) and udp (over UDP),
# each with its admin listener. A UDP sipload runs each of SCENARIOS open
# loop at RATE, ROUNDS times, the three siplb in turn, so that they see the
# same moments of the shared machine.
#
# For every run it reads each siplb's CPU (/proc/PID/stat) and the HEP
# sender's own (siplb_capture_send_cpu_seconds_total from /metrics: its
# thread's CPU clock around each drain, the system calls and, on loopback,
# the collector's receive path included). It prints, per scenario, the
# medians over the rounds of CPU per unit: the whole process, the data path
# (the process less the sender: the event loops, where Capture runs, and
# the rest of siplb) and the sender; and what capture adds over off, as a
# whole and on the data path (the target of issue 14, ≤ +5 %).
#
# With PERF=1 (and perf installed) it then profiles each siplb, off
# included, through one more run (perf record -g -p PID) and prints the
# share of siplb's samples in Capture (the data path's part: encoding and
# queueing), in the sender goroutine and in the runtime's sysmon: a split
# within one run, which the run-to-run noise of the medians (±20 % a round
# on a shared 2-core VM) does not blur; and each one's samples against
# off's, at the same rate for the same time (`perf diff` of the files in
# the results folder shows where the difference goes).
#
# Every run's sipload -json and the summary (summary.txt) go to
# benchmarks/results/capture-RUN/. Every process is started here and stopped
# by its PID; everything runs on 127.0.0.1 and is bounded in time: about
# 2 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
SCENARIOS=${SCENARIOS:-options call}
RATE=${RATE:-20000}         # OPTIONS or calls per second, open loop (calls: a fifth of it)
ROUNDS=${ROUNDS:-5}         # runs of each siplb per scenario, in turn
DURATION=${DURATION:-4}     # seconds per run
SOCKETS=${SOCKETS:-4}       # sipload's sockets
LOOPS=${LOOPS:-2}           # each siplb's event loops
PORT_BASE=${PORT_BASE:-28160} # off +0, tcp +1, udp +2, admin +3..+5, hepsink +6, sipecho +10..+12
RESULTS=${RESULTS:-benchmarks/results}
PERF=${PERF:-0}             # 1: profile each siplb through one more run

for v in RATE ROUNDS DURATION SOCKETS LOOPS PORT_BASE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench-capture: $v=${!v}: want a whole number above 0" >&2; exit 2; }
done
[ "$ROUNDS" -le 99 ] || { echo "bench-capture: ROUNDS=$ROUNDS: want 1 to 99" >&2; exit 2; }
for sc in $SCENARIOS; do
	case $sc in options | call) ;; *) echo "bench-capture: SCENARIOS: $sc: want options or call" >&2; exit 2 ;; esac
done
for b in siplb sipload sipecho hepsink; do
	[ -x "$BIN/$b" ] || { echo "bench-capture: $BIN/$b is missing (make build)" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "bench-capture: needs curl (apt-get install curl)" >&2; exit 2; }
[ "$PERF" = 0 ] || command -v perf >/dev/null || { echo "bench-capture: PERF=1 needs perf (apt-get install linux-perf)" >&2; exit 2; }

out="$RESULTS/capture-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
. scripts/benchlib.sh # start, cleanup on exit, ticks, field, median

h=127.0.0.1
be=("$h:$((PORT_BASE + 10))" "$h:$((PORT_BASE + 11))" "$h:$((PORT_BASE + 12))")
sink="$h:$((PORT_BASE + 6))"
targets=(off tcp udp)
declare -A sip=([off]="$h:$PORT_BASE" [tcp]="$h:$((PORT_BASE + 1))" [udp]="$h:$((PORT_BASE + 2))")
declare -A adm=([off]="$h:$((PORT_BASE + 3))" [tcp]="$h:$((PORT_BASE + 4))" [udp]="$h:$((PORT_BASE + 5))")
for t in "${targets[@]}"; do
	{
		cat <<-EOF
			listen:
			  - address: udp://${sip[$t]}
			pools:
			  - name: bench
			    algorithm: hash-callid
			    backends:
			      - address: udp://${be[0]}
			      - address: udp://${be[1]}
			      - address: udp://${be[2]}
			    health:
			      disabled: true
			engine:
			  loops: $LOOPS
			admin:
			  listen: ${adm[$t]}
			log:
			  level: warn
			security:
			  flood:
			    window: 1s
			    density: 524288
		EOF
		[ "$t" = off ] || printf 'capture:\n  hep: %s\n  transport: %s\n  capture_id: 2001\n' "$sink" "$t"
	} >"$out/$t.yaml"
done

start sipecho "$BIN/sipecho" -q -listen "${be[0]}" -listen "${be[1]}" -listen "${be[2]}"
start hepsink "$BIN/hepsink" -listen "$sink"
for t in "${targets[@]}"; do start "$t" "$BIN/siplb" --config "$out/$t.yaml"; done
sleep 1.5
for t in "${targets[@]}"; do
	kill -0 "${pid[$t]}" 2>/dev/null || { echo "bench-capture: siplb $t exited (see $out/$t.log)" >&2; exit 1; }
	"$BIN/sipload" -q -scenario options -target "${sip[$t]}" -n 10 -window 1 -duration 3s -drain 1s >/dev/null ||
		{ echo "bench-capture: siplb $t at ${sip[$t]} does not answer OPTIONS" >&2; exit 1; }
done

sendcpu() { # target: the sender's CPU seconds so far (0 with capture off)
	[ "$1" = off ] && { echo 0; return; }
	curl -fsS "http://${adm[$1]}/metrics" | awk '$1 == "siplb_capture_send_cpu_seconds_total" { print $2; found = 1 } END { if (!found) print 0 }'
}

{
	echo "bench-capture $(date -u +%FT%TZ): $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "siplb $("$BIN/siplb" --version 2>/dev/null | head -1), loops $LOOPS; sipload UDP, $SOCKETS sockets, open loop; $ROUNDS rounds of ${DURATION}s per scenario and siplb"
} | tee "$out/summary.txt"
for sc in $SCENARIOS; do
	rate=$RATE
	[ "$sc" = call ] && rate=$((RATE / 5))
	for ((k = 1; k <= ROUNDS; k++)); do
		for t in "${targets[@]}"; do
			j="$out/$t-$sc-$k.json"
			c0=$(ticks "${pid[$t]}") s0=$(sendcpu "$t")
			"$BIN/sipload" -q -scenario "$sc" -target "${sip[$t]}" -sockets "$SOCKETS" \
				-rate "$rate" -duration "${DURATION}s" -json "$j" >/dev/null ||
				echo "bench-capture: $t $sc round $k: not every unit completed (see $j)" >&2
			c1=$(ticks "${pid[$t]}") s1=$(sendcpu "$t")
			# total, data path, sender: µs per completed unit
			awk -v d=$((c1 - c0)) -v hz="$hz" -v s0="$s0" -v s1="$s1" -v n="$(field "$j" completed)" 'BEGIN {
				if (n <= 0) exit
				all = d / hz * 1e6 / n; snd = (s1 - s0) * 1e6 / n
				printf "%.2f %.2f %.2f\n", all, all - snd, snd
			}' >>"$out/$t-$sc.txt"
		done
	done
done
{
	echo
	echo "| scenario | rate/s | CPU µs/unit off | tcp: all | tcp: data path | tcp: sender | udp: all | udp: data path | udp: sender | tcp added: all | tcp added: data path (target ≤ +5 %) | udp added: all | udp added: data path |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	for sc in $SCENARIOS; do
		rate=$RATE
		[ "$sc" = call ] && rate=$((RATE / 5))
		declare -A m=()
		for t in "${targets[@]}"; do
			for c in 1 2 3; do m[$t.$c]=$(cut -d' ' -f$c "$out/$t-$sc.txt" | median); done
		done
		added() { awk -v a="$1" -v b="$2" -v target="${3:-}" 'BEGIN { v = 100 * (a / b - 1); printf "%+.1f %%", v; if (target != "") printf " %s", v <= target ? "✓" : "✗" }'; }
		echo "| $sc | $rate | ${m[off.1]} | ${m[tcp.1]} | ${m[tcp.2]} | ${m[tcp.3]} | ${m[udp.1]} | ${m[udp.2]} | ${m[udp.3]} | $(added "${m[tcp.1]}" "${m[off.1]}") | $(added "${m[tcp.2]}" "${m[off.1]}" 5) | $(added "${m[udp.1]}" "${m[off.1]}") | $(added "${m[udp.2]}" "${m[off.1]}") |"
		unset m
	done
	echo
	echo "Medians over the rounds. data path: the process's CPU less the HEP sender's thread (siplb_capture_send_cpu_seconds_total). results: $out"
} | tee -a "$out/summary.txt"
[ "$PERF" = 1 ] || exit 0
{
	echo
	echo "| scenario | siplb | samples | ÷ off | Capture (data path) | sender goroutine | sysmon | the rest |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|"
} | tee -a "$out/summary.txt"
for sc in $SCENARIOS; do
	rate=$RATE
	[ "$sc" = call ] && rate=$((RATE / 5))
	base=
	for t in "${targets[@]}"; do
		"$BIN/sipload" -q -scenario "$sc" -target "${sip[$t]}" -sockets "$SOCKETS" -rate "$rate" \
			-duration "$((DURATION + 2))s" -json "$out/$t-$sc-perf.json" >/dev/null &
		lp=$!
		sleep 1
		perf record -q -g -p "${pid[$t]}" -o "$out/$t-$sc.perf" -- sleep "$DURATION" >/dev/null 2>&1 || true
		wait "$lp" || true
		# perf script prints a stack a paragraph: count those through
		# Capture, through the sender's Run and through sysmon.
		read -r all cap run sys < <(perf script -i "$out/$t-$sc.perf" 2>/dev/null | awk '
			/^$/ { if (n) { all++; if (c) cap++; else if (r) run++; else if (m) sys++ } n = c = r = m = 0; next }
			{ n++ }
			/hep\.\(\*Sender\)\.Capture/ { c = 1 }
			/hep\.\(\*Sender\)\.Run/ { r = 1 }
			/runtime\.sysmon/ { m = 1 }
			END {
				if (n) { all++; if (c) cap++; else if (r) run++; else if (m) sys++ }
				print all + 0, cap + 0, run + 0, sys + 0
			}')
		[ -n "$base" ] || base=$all
		awk -v sc="$sc" -v t="$t" -v all="$all" -v cap="$cap" -v run="$run" -v sys="$sys" -v base="$base" 'BEGIN {
			if (!all) { printf "| %s | %s | 0 | - | - | - | - | - |\n", sc, t; exit }
			printf "| %s | %s | %d | %.2f | %.1f %% | %.1f %% | %.1f %% | %.1f %% |\n", sc, t, all, base ? all / base : 0,
				100 * cap / all, 100 * run / all, 100 * sys / all, 100 * (all - cap - run - sys) / all
		}'
	done
done | tee -a "$out/summary.txt"
