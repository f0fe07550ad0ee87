#!/usr/bin/env bash
# bench.sh: the side-by-side benchmark of `make bench`, in one run on this
# machine (see benchmarks/README.md):
#   1. micro-benchmarks (parser, engine, balance; parser vs sipgo);
#   2. the same SIP load (sipload) on four targets in front of the same
#      sipecho backends: straight to a backend (the ceiling), through
#      udprelay (a recvmmsg/sendmmsg relay that parses nothing: the raw limit
#      of any forwarder here), through siplb, and through Kamailio (Debian's
#      package, a stateless dispatcher; installed with apt-get if missing);
#      for each scenario a closed loop at saturation, then an open loop at
#      RATE_SHARE of siplb's saturation rate for the latency;
#   3. over TCP (TCP_SCENARIOS, closed loop by default): sipload with
#      -transport tcp straight to sipecho's TCP port, through siplb with a
#      TCP listener and TCP backends, and through Kamailio with TCP on
#      (targets direct_tcp, siplb_tcp, kamailio_tcp);
#   3b. across transports (CROSS_SCENARIOS, open loop by default): a TCP
#      client through siplb to UDP backends (target siplb_cross_tcp), beside
#      siplb_tcp (TCP to TCP) at the same rate: what crossing costs;
#   4. siplb with --udp-io gnet (target siplb_gnet) beside the default
#      batched UDP path, for GNET_SCENARIOS;
#   5. siplb with its edge defences off (target siplb_open: no flood
#      detector, no scanner filter) beside the default siplb, which keeps
#      them on, for DEFENCE_SCENARIOS: what the defences cost per message;
#   6. siplb with capture.hep on (target siplb_capture), mirroring every
#      message as HEPv3 to hepsink (over CAPTURE_TRANSPORT, TCP by
#      default), a collector that counts and discards, beside the default
#      siplb, for CAPTURE_SCENARIOS: what capture costs, whole and on the
#      data path (less the sender's thread, from siplb's metrics; curl);
#   7. pinned (PIN_SCENARIOS, open loop at the same rate): the forwarder
#      alone on one core (PIN_FWD_CPU) and sipload with its own sipecho on
#      the other (PIN_LOAD_CPU), with taskset, for direct, the relay and
#      siplb (Kamailio if PIN_TARGETS names it; targets direct_pin,
#      relay_pin, siplb_pin, kamailio_pin): how much of the added latency is
#      the forwarder and how much the 2-core box they otherwise share;
#   8. the table, ratios and plots (benchreport) in benchmarks/results/RUN/.
# Every process is started here and stopped by its PID; traffic stays on
# 127.0.0.1. The defaults take about six minutes (the pinned runs about
# 1.5 of them); the knobs below make longer runs.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
SCENARIOS=${SCENARIOS:-options call register}
TARGETS=${TARGETS:-direct relay siplb kamailio}
SAT_DURATION=${SAT_DURATION:-4s}   # closed loop per target and scenario
RATE_DURATION=${RATE_DURATION:-4s} # open loop per target and scenario
WINDOW=${WINDOW:-200}              # closed loop: units outstanding
SOCKETS=${SOCKETS:-4}              # sipload's sockets (= the relay's upstreams)
RATE_SHARE=${RATE_SHARE:-0.5}      # open-loop rate, as a share of siplb's saturation rate
LOOPS=${LOOPS:-$(nproc)}          # siplb event loops: its own default, one per core (LOOPS=1 trades throughput for tail latency on 2 cores)
KAM_CHILDREN=${KAM_CHILDREN:-$((2 * $(nproc)))} # Kamailio UDP receivers; 2 per core measured best here
KAM_INSTALL=${KAM_INSTALL:-1}      # 0: never apt-get install kamailio
MICRO=${MICRO:-1}                  # 0: skip the micro-benchmarks
BENCHTIME=${BENCHTIME:-200ms}      # -benchtime of the micro-benchmarks
TCP_SCENARIOS=${TCP_SCENARIOS-call} # scenarios also run over TCP; empty: none
TCP_TARGETS=${TCP_TARGETS:-direct siplb kamailio} # targets over TCP (as direct_tcp, siplb_tcp, kamailio_tcp)
TCP_MODES=${TCP_MODES:-sat}        # sat (closed loop), rate (open loop at RATE_SHARE of siplb_tcp's), or both
CROSS_SCENARIOS=${CROSS_SCENARIOS-call} # scenarios run TCP client -> siplb -> UDP backends (siplb_cross_tcp); empty: none
CROSS_MODES=${CROSS_MODES:-rate}   # rate (open loop at RATE_SHARE of siplb_tcp's saturation, beside siplb_tcp at it), sat, or both
GNET_SCENARIOS=${GNET_SCENARIOS-options} # scenarios also run on siplb --udp-io gnet; empty: none
DEFENCE_SCENARIOS=${DEFENCE_SCENARIOS-options call} # scenarios also run on siplb with its defences off (siplb_open); empty: none
CAPTURE_SCENARIOS=${CAPTURE_SCENARIOS-options call} # scenarios also run on siplb with capture.hep on (siplb_capture); empty: none
CAPTURE_TRANSPORT=${CAPTURE_TRANSPORT:-tcp} # siplb_capture's capture.transport: tcp (the README's advice where cost matters) or udp
pin_asked=${PIN_SCENARIOS+set}     # PIN_SCENARIOS given, not the default
PIN_SCENARIOS=${PIN_SCENARIOS-options call} # scenarios also run pinned (open loop at the same rate, forwarder on its own core); empty: none
PIN_TARGETS=${PIN_TARGETS:-direct relay siplb} # pinned targets (as direct_pin, relay_pin, siplb_pin); add kamailio for kamailio_pin
PIN_ROUNDS=${PIN_ROUNDS:-2}        # pinned: rounds of the pinned targets, alternating; from the second on, each unpinned one of PIN_TARGETS runs again beside its pinned one (the report takes each one's lowest p99)
PIN_LOAD_CPU=${PIN_LOAD_CPU:-0}    # pinned: the CPU of sipload and the pinned sipecho
PIN_FWD_CPU=${PIN_FWD_CPU:-1}      # pinned: the CPU of the forwarder under test
PIN_CHRT=${PIN_CHRT-auto}         # pinned: chrt arguments for every pinned process, e.g. "-f 1" (SCHED_FIFO; root or CAP_SYS_NICE); auto: "-f 1" where chrt may, else none; empty: the normal scheduler
KAM_PIN_CHILDREN=${KAM_PIN_CHILDREN:-2} # kamailio_pin's UDP receivers, on its one core
PORT_BASE=${PORT_BASE:-25060}      # siplb +0, relay +1, kamailio +2, siplb_gnet +3, siplb_tcp +4, kamailio_tcp +5, siplb_open +6, siplb_cross_tcp +7 (its UDP leg +8), sipecho +10..+12, siplb_capture +13, hepsink +14, siplb_pin +15, relay_pin +16, kamailio_pin +17, the pinned sipecho +18..+20, siplb_capture's admin (TCP) +21
RESULTS=${RESULTS:-benchmarks/results}
GO=${GO:-go}

out="$RESULTS/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
rundir=$(mktemp -d "${TMPDIR:-/tmp}/siplb-bench.XXXXXX")
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
warn() { printf 'bench: %s\n' "$*" | tee -a "$out/warnings.txt" >&2; }

# ---- Kamailio: installed if missing (it is the point of the comparison).
kamailio_bin() {
	command -v kamailio 2>/dev/null || { [ -x /usr/sbin/kamailio ] && echo /usr/sbin/kamailio; } || true
}
kam=$(kamailio_bin)
kam_why="not available"
# Not started at all when no target of this run is Kamailio's.
if [[ " $TARGETS " != *" kamailio "* ]] && { [ -z "$TCP_SCENARIOS" ] || [[ " $TCP_TARGETS " != *" kamailio "* ]]; } &&
	{ [ -z "$PIN_SCENARIOS" ] || [[ " $PIN_TARGETS " != *" kamailio "* ]]; }; then
	kam="" kam_why="not run (no kamailio target)"
fi
if [ -z "$kam" ] && [[ " $TARGETS " == *" kamailio "* ]]; then
	if [ "$KAM_INSTALL" = 1 ] && command -v apt-get >/dev/null; then
		sudo=""
		if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
		say "installing kamailio (apt-get; KAM_INSTALL=0 skips)"
		if $sudo apt-get update -qq >"$out/apt.log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kamailio >>"$out/apt.log" 2>&1; then
			kam=$(kamailio_bin)
		fi
	fi
	if [ -z "$kam" ]; then
		warn "KAMAILIO NOT AVAILABLE: could not install Debian's kamailio package (see $out/apt.log); the kamailio rows are left out"
	fi
fi

{
	echo "date: $(date -u +%FT%TZ)"
	echo "host: $(uname -srm)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "cores: $(nproc)"
	echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, at start)"
	echo "go: $($GO version)"
	echo "siplb: $("$BIN/siplb" --version 2>&1 | head -1)"
	if [ -n "$kam" ]; then echo "kamailio: $("$kam" -v 2>&1 | head -1)"; else echo "kamailio: $kam_why"; fi
	echo "settings: SAT_DURATION=$SAT_DURATION RATE_DURATION=$RATE_DURATION WINDOW=$WINDOW SOCKETS=$SOCKETS RATE_SHARE=$RATE_SHARE LOOPS=$LOOPS KAM_CHILDREN=$KAM_CHILDREN TCP_SCENARIOS=\"$TCP_SCENARIOS\" TCP_MODES=\"$TCP_MODES\" CROSS_SCENARIOS=\"$CROSS_SCENARIOS\" CROSS_MODES=\"$CROSS_MODES\" GNET_SCENARIOS=\"$GNET_SCENARIOS\" DEFENCE_SCENARIOS=\"$DEFENCE_SCENARIOS\" CAPTURE_SCENARIOS=\"$CAPTURE_SCENARIOS\" CAPTURE_TRANSPORT=$CAPTURE_TRANSPORT PIN_SCENARIOS=\"$PIN_SCENARIOS\" PIN_TARGETS=\"$PIN_TARGETS\" PIN_ROUNDS=$PIN_ROUNDS PIN_LOAD_CPU=$PIN_LOAD_CPU PIN_FWD_CPU=$PIN_FWD_CPU PIN_CHRT=\"$PIN_CHRT\""
} | tee "$out/machine.txt"

if [ "$MICRO" = 1 ]; then
	say "micro-benchmarks (-benchtime $BENCHTIME)"
	# Built with siplb's own profile (cmd/siplb/default.pgo), as the siplb
	# binary is: the figures are of the code as it ships.
	pgo=off
	[ -f cmd/siplb/default.pgo ] && pgo=$PWD/cmd/siplb/default.pgo
	$GO test -pgo="$pgo" -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" ./parser ./engine ./balance | tee "$out/micro.txt" || warn "micro-benchmarks failed"
	(cd benchmarks && $GO test -run '^$' -bench 'Parse' -benchmem -benchtime "$BENCHTIME" .) | tee "$out/parser-vs-sipgo.txt" || warn "parser-vs-sipgo failed"
fi

# ---- The targets, all in front of the same three sipecho backends.
h=127.0.0.1
be=("$h:$((PORT_BASE + 10))" "$h:$((PORT_BASE + 11))" "$h:$((PORT_BASE + 12))")
declare -A addr=([direct]="${be[0]}" [siplb]="$h:$PORT_BASE" [relay]="$h:$((PORT_BASE + 1))" [kamailio]="$h:$((PORT_BASE + 2))"
	[siplb_gnet]="$h:$((PORT_BASE + 3))" [direct_tcp]="${be[0]}" [siplb_tcp]="$h:$((PORT_BASE + 4))" [kamailio_tcp]="$h:$((PORT_BASE + 5))" [siplb_open]="$h:$((PORT_BASE + 6))"
	[siplb_cross_tcp]="$h:$((PORT_BASE + 7))" [siplb_capture]="$h:$((PORT_BASE + 13))" [hepsink]="$h:$((PORT_BASE + 14))"
	[siplb_pin]="$h:$((PORT_BASE + 15))" [relay_pin]="$h:$((PORT_BASE + 16))" [kamailio_pin]="$h:$((PORT_BASE + 17))" [direct_pin]="$h:$((PORT_BASE + 18))")
# The pinned targets' own sipecho, on the load generator's core.
be_pin=("$h:$((PORT_BASE + 18))" "$h:$((PORT_BASE + 19))" "$h:$((PORT_BASE + 20))")
tcp_targets=()
if [ -n "$TCP_SCENARIOS" ]; then
	for t in $TCP_TARGETS; do tcp_targets+=("${t}_tcp"); done
fi
wants() { [[ " ${tcp_targets[*]} " == *" $1 "* ]]; } # wants TARGET: a TCP target is to run
in_list() { [[ " $2 " == *" $1 "* ]]; }                 # in_list word list
declare -A pid=()

start() { # name command...: runs it in the background, its output in the results
	local name=$1
	shift
	"$@" >"$out/$name.log" 2>&1 &
	pids+=($!)
	pid[$name]=$!
}

say "starting sipecho, udprelay, siplb${kam:+, kamailio} (logs in $out/*.log)"
# sipecho answers over UDP and TCP on the same three ports.
start sipecho "$BIN/sipecho" -q -tcp -listen "${be[0]}" -listen "${be[1]}" -listen "${be[2]}"
start relay "$BIN/udprelay" -listen "${addr[relay]}" -backend "${be[0]}" -backend "${be[1]}" -backend "${be[2]}"
# siplb as Kamailio runs: no active health probing (ds_ping_interval 0), so
# both forward only the measured load. SIPLB_CONFIG names another file.
# security_on is siplb's (and siplb_gnet's, siplb_tcp's) security section.
security_on=$(
	cat <<-EOF
		# The defences stay on (their cost is part of the figures), with a
		# density one load generator at saturation never reaches: flooding
		# is bench-flood's scenario, not this one's.
		security:
		  flood:
		    window: 1s
		    density: 524288
	EOF
)
# siplb_open's: the flood detector (per datagram, before parsing) and the
# scanner filter (per request) off; the reply limiter stays, it only acts on
# stateless replies, which this load never draws.
security_off=$(
	cat <<-EOF
		security:
		  flood:
		    disabled: true
		  scanners:
		    disabled: true
	EOF
)
siplb_yaml() { # transport listen-address [engine-extra [security]]: a generated siplb configuration
	cat <<-EOF
		listen:
		  - address: $1://$2
		pools:
		  - name: bench
		    algorithm: hash-callid
		    backends:
		      - address: $1://${be[0]}
		      - address: $1://${be[1]}
		      - address: $1://${be[2]}
		    health:
		      disabled: true
		engine:
		  loops: $LOOPS
		${3:-}
		log:
		  level: warn
		${4:-$security_on}
	EOF
}
cfg=${SIPLB_CONFIG:-$rundir/siplb.yaml}
if [ -z "${SIPLB_CONFIG:-}" ]; then
	siplb_yaml udp "${addr[siplb]}" >"$cfg"
fi
cp "$cfg" "$out/siplb.yaml"
if "$BIN/siplb" --check --config "$cfg" >"$out/siplb-check.log" 2>&1; then
	start siplb "$BIN/siplb" --config "$cfg"
else
	warn "siplb rejects $out/siplb.yaml (see siplb-check.log); running it from flags, with its default health probing"
	start siplb "$BIN/siplb" --listen "udp://${addr[siplb]}" --loops "$LOOPS" --log-level warn \
		--backend "udp://${be[0]}" --backend "udp://${be[1]}" --backend "udp://${be[2]}"
fi
# start_siplb_variant name yaml [prefix...]: another siplb, from a generated
# configuration; prefix (env, taskset...) goes before the command.
start_siplb_variant() {
	local name=$1 yaml=$2
	shift 2
	printf '%s\n' "$yaml" >"$out/$name.yaml"
	if "$BIN/siplb" --check --config "$out/$name.yaml" >"$out/$name-check.log" 2>&1; then
		start "$name" "$@" "$BIN/siplb" --config "$out/$name.yaml"
	else
		warn "siplb rejects $out/$name.yaml (see $name-check.log); the $name rows are left out"
	fi
}
if [ -n "$GNET_SCENARIOS" ]; then
	start_siplb_variant siplb_gnet "$(siplb_yaml udp "${addr[siplb_gnet]}" "  udp_io: gnet")"
fi
if [ -n "$DEFENCE_SCENARIOS" ]; then
	start_siplb_variant siplb_open "$(siplb_yaml udp "${addr[siplb_open]}" "" "$security_off")"
fi
if [ -n "$CAPTURE_SCENARIOS" ]; then
	# siplb_capture: siplb as the default one, and every message mirrored
	# to hepsink (its count of frames is in hepsink.log at the end).
	start hepsink "$BIN/hepsink" -listen "${addr[hepsink]}"
	# Its admin listener serves siplb_capture_send_cpu_seconds_total: the
	# sender thread's CPU, which measure() records beside the process's.
	start_siplb_variant siplb_capture "$(siplb_yaml udp "${addr[siplb_capture]}")
$(printf 'capture:\n  hep: %s\n  transport: %s\n  capture_id: 2001\nadmin:\n  listen: %s\n' "${addr[hepsink]}" "$CAPTURE_TRANSPORT" "$h:$((PORT_BASE + 21))")"
fi
if wants siplb_tcp; then
	start_siplb_variant siplb_tcp "$(siplb_yaml tcp "${addr[siplb_tcp]}")"
fi
# siplb_cross_tcp: a TCP listener in front of the UDP backends, with a UDP
# listener for the datagrams to leave by (and their answers to come back to).
siplb_cross_yaml() {
	siplb_yaml udp "$h:$((PORT_BASE + 8))" | sed "s|^  - address: udp://$h:$((PORT_BASE + 8))\$|&\n  - address: tcp://${addr[siplb_cross_tcp]}|"
}
if [ -n "$CROSS_SCENARIOS" ]; then
	start_siplb_variant siplb_cross_tcp "$(siplb_cross_yaml)"
fi
if [ -n "$kam" ]; then
	for b in "${be[@]}"; do echo "1 sip:$b"; done >"$rundir/dispatcher.list"
	# -DD -E: in the foreground, logging to stderr, so $! is the main
	# process; it stops its children when it gets SIGTERM.
	start kamailio "$kam" -DD -E -f benchmarks/kamailio/kamailio.cfg -w "$rundir" -P "$rundir/kamailio.pid" \
		-m 64 -M 8 -A "KAM_LISTEN=udp:${addr[kamailio]}" -A "KAM_LIST=\"$rundir/dispatcher.list\"" \
		-A "KAM_CHILDREN=$KAM_CHILDREN"
	if wants kamailio_tcp; then
		for b in "${be[@]}"; do echo "1 sip:$b;transport=tcp"; done >"$rundir/dispatcher-tcp.list"
		start kamailio_tcp "$kam" -DD -E -f benchmarks/kamailio/kamailio.cfg -w "$rundir" -P "$rundir/kamailio-tcp.pid" \
			-m 64 -M 8 -A KAM_TCP -A "KAM_LISTEN=tcp:${addr[kamailio_tcp]}" \
			-A "KAM_LIST=\"$rundir/dispatcher-tcp.list\"" -A "KAM_CHILDREN=$KAM_CHILDREN"
	fi
fi

# ---- Pinned: the forwarder under test alone on PIN_FWD_CPU, sipload and a
# sipecho of its own on PIN_LOAD_CPU (taskset execs the command, so the PID
# is the process's own and it is stopped like the others). Each Go process
# on one CPU gets GOMAXPROCS=1 (the runtime's default under that affinity
# too; said here so that it does not depend on it), and siplb_pin one event
# loop: with UDP legs alone siplb adds no Ps for its loops (engine/procs.go),
# so one loop and one P on one core, nothing of it waiting for another.
# One P is also what makes SCHED_FIFO (PIN_CHRT) safe for a Go process: with
# more Ps than CPUs, a thread that never blocks keeps its CPU from the
# others at the same priority (scripts/bench-cross.sh says what that did).
# pin.txt says how they ran, or why they did not; the report prints it.
pin_load=() pin_fwd=() pin_up=()
if [ -n "$PIN_SCENARIOS" ]; then
	pin_why=""
	if ! [[ $PIN_ROUNDS =~ ^[1-9][0-9]?$ ]]; then
		warn "PIN_ROUNDS=$PIN_ROUNDS is not a number of rounds from 1 to 99; running one"
		PIN_ROUNDS=1
	fi
	if ! command -v taskset >/dev/null; then
		pin_why="taskset is not installed (util-linux)"
	elif [ "$(nproc)" -lt 2 ]; then
		pin_why="this machine has $(nproc) CPU (pinning needs two: one for the forwarder, one for sipload and sipecho)"
	elif [ "$PIN_LOAD_CPU" = "$PIN_FWD_CPU" ]; then
		pin_why="PIN_LOAD_CPU and PIN_FWD_CPU are the same CPU ($PIN_FWD_CPU)"
	elif ! taskset -c "$PIN_LOAD_CPU" true 2>/dev/null || ! taskset -c "$PIN_FWD_CPU" true 2>/dev/null; then
		pin_why="CPU $PIN_LOAD_CPU or $PIN_FWD_CPU is not one this process may run on ($(taskset -pc $$ 2>/dev/null | sed 's/.*: //'))"
	fi
	if [ -z "$pin_why" ] && [ "$PIN_CHRT" = auto ]; then
		# Under the normal scheduler other work on a shared box sets the
		# pinned runs' tail (benchmarks/README.md, "Pinned"); real-time
		# priority for these bounded runs is what makes them say something.
		PIN_CHRT=""
		if command -v chrt >/dev/null && chrt -f 1 true 2>/dev/null; then
			PIN_CHRT="-f 1"
		else
			warn "pinned runs under the normal scheduler: chrt -f 1 is refused here (needs root or CAP_SYS_NICE), so other work on the box can set their tail"
		fi
	fi
	if [ -n "$pin_why" ]; then
		:
	elif [ -n "$PIN_CHRT" ] && ! chrt $PIN_CHRT true 2>/dev/null; then
		pin_why="chrt $PIN_CHRT is refused here (SCHED_FIFO/RR needs root or CAP_SYS_NICE)"
	fi
	if [ -n "$pin_why" ]; then
		echo "skipped: $pin_why" >"$out/pin.txt"
		warn "pinned runs skipped: $pin_why"
	else
		pin_load=(taskset -c "$PIN_LOAD_CPU") pin_fwd=(taskset -c "$PIN_FWD_CPU")
		if [ -n "$PIN_CHRT" ]; then
			pin_load+=(chrt $PIN_CHRT) pin_fwd+=(chrt $PIN_CHRT)
		fi
		pin_note="sipload and its sipecho (${be_pin[*]}) on CPU $PIN_LOAD_CPU, the forwarder on CPU $PIN_FWD_CPU (taskset)"
		pin_note+="; siplb_pin: engine.loops 1, GOMAXPROCS=1; relay_pin, sipload, sipecho: GOMAXPROCS=1"
		[ -n "$PIN_CHRT" ] && pin_note+="; every pinned process and sipload under chrt $PIN_CHRT"
		start sipecho_pin env GOMAXPROCS=1 "${pin_load[@]}" "$BIN/sipecho" -q -listen "${be_pin[0]}" -listen "${be_pin[1]}" -listen "${be_pin[2]}"
		pin_up=(direct_pin)
		if in_list relay "$PIN_TARGETS"; then
			start relay_pin env GOMAXPROCS=1 "${pin_fwd[@]}" "$BIN/udprelay" -listen "${addr[relay_pin]}" \
				-backend "${be_pin[0]}" -backend "${be_pin[1]}" -backend "${be_pin[2]}"
			pin_up+=(relay_pin)
		fi
		if in_list siplb "$PIN_TARGETS"; then
			# siplb's own configuration with one loop, in front of the
			# pinned sipecho (siplb_yaml reads be and LOOPS).
			pin_yaml=$(
				LOOPS=1
				be=("${be_pin[@]}")
				siplb_yaml udp "${addr[siplb_pin]}"
			)
			start_siplb_variant siplb_pin "$pin_yaml" env GOMAXPROCS=1 "${pin_fwd[@]}"
			pin_up+=(siplb_pin)
		fi
		if in_list kamailio "$PIN_TARGETS"; then
			if [ -n "$kam" ]; then
				for b in "${be_pin[@]}"; do echo "1 sip:$b"; done >"$rundir/dispatcher-pin.list"
				start kamailio_pin "${pin_fwd[@]}" "$kam" -DD -E -f benchmarks/kamailio/kamailio.cfg -w "$rundir" -P "$rundir/kamailio-pin.pid" \
					-m 64 -M 8 -A "KAM_LISTEN=udp:${addr[kamailio_pin]}" -A "KAM_LIST=\"$rundir/dispatcher-pin.list\"" \
					-A "KAM_CHILDREN=$KAM_PIN_CHILDREN"
				pin_up+=(kamailio_pin)
				pin_note+="; kamailio_pin: $KAM_PIN_CHILDREN children"
			else
				warn "kamailio is not available; no kamailio_pin rows"
			fi
		fi
		echo "$pin_note" >"$out/pin.txt"
	fi
fi
sleep 1

# Keep only the targets that are up and answer one OPTIONS.
alive() { # target transport: its process runs and it answers one OPTIONS
	local t=$1 proc=${1%_tcp}
	[ "$proc" = direct ] && proc=sipecho
	[ "$t" = siplb_tcp ] && proc=siplb_tcp
	[ "$t" = kamailio_tcp ] && proc=kamailio_tcp
	[ "$t" = siplb_cross_tcp ] && proc=siplb_cross_tcp
	[ "$t" = direct_pin ] && proc=sipecho_pin
	if [ -z "${pid[$proc]:-}" ] || ! kill -0 "${pid[$proc]}" 2>/dev/null; then
		[ "${t%_tcp}" = kamailio ] && [ -z "$kam" ] && return 1
		warn "$t is not running (see $out/$proc.log); its rows are left out"
		return 1
	fi
	if ! "$BIN/sipload" -q -transport "$2" -scenario options -target "${addr[$t]}" -n 10 -window 1 -duration 3s -drain 1s; then
		warn "$t at ${addr[$t]} does not answer OPTIONS over $2; its rows are left out"
		return 1
	fi
}
up=()
for t in $TARGETS; do alive "$t" udp && up+=("$t"); done
gnet_up=()
[ -n "$GNET_SCENARIOS" ] && alive siplb_gnet udp && gnet_up=(siplb_gnet)
open_up=()
[ -n "$DEFENCE_SCENARIOS" ] && alive siplb_open udp && open_up=(siplb_open)
capture_up=()
[ -n "$CAPTURE_SCENARIOS" ] && alive siplb_capture udp && capture_up=(siplb_capture)
tcp_up=()
for t in "${tcp_targets[@]}"; do alive "$t" tcp && tcp_up+=("$t"); done
cross_up=()
[ -n "$CROSS_SCENARIOS" ] && alive siplb_cross_tcp tcp && cross_up=(siplb_cross_tcp)
pin_alive=()
for t in "${pin_up[@]}"; do alive "$t" udp && pin_alive+=("$t"); done
pin_up=("${pin_alive[@]}")
if [ -n "$PIN_SCENARIOS" ] && [ ${#pin_up[@]} -gt 0 ] && [[ " ${pin_up[*]} " != *" direct_pin "* ]]; then
	warn "direct_pin does not answer: the pinned rows have nothing to be compared with and are left out"
	pin_up=()
fi
if [ ${#pin_up[@]} -gt 0 ] && [ -n "$pin_asked" ]; then
	for sc in $PIN_SCENARIOS; do
		in_list "$sc" "$SCENARIOS" || warn "PIN_SCENARIOS: $sc is not in SCENARIOS (its open-loop rate comes from siplb's saturation there); it does not run pinned"
	done
fi
[ ${#up[@]} -gt 0 ] || { warn "no target answers"; exit 1; }

# ---- CPU accounting: user+system ticks of a process and its descendants.
hz=$(getconf CLK_TCK)
tree() { # pid: it and its descendants
	local p=$1 c
	echo "$p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree "$c"; done
}
ticks() { # pid: utime+stime of the tree, in ticks
	local sum=0 p f
	for p in $(tree "$1"); do
		f=$(sed 's/^.*) //' /proc/"$p"/stat 2>/dev/null) || continue
		set -- $f
		sum=$((sum + ${12} + ${13}))
	done
	echo "$sum"
}
procs=()
for p in sipecho relay siplb siplb_gnet siplb_open siplb_capture hepsink siplb_tcp siplb_cross_tcp kamailio kamailio_tcp sipecho_pin relay_pin siplb_pin kamailio_pin; do
	[ -n "${pid[$p]:-}" ] && procs+=("$p")
done

# capture_send_cpu: siplb_capture's HEP sender's CPU seconds so far, from
# its metrics; fails when they cannot be read.
capture_send_cpu() {
	curl -fsS --max-time 2 "http://$h:$((PORT_BASE + 21))/metrics" 2>/dev/null |
		awk '$1 == "siplb_capture_send_cpu_seconds_total" { print $2; found = 1 } END { exit !found }'
}

# measure target scenario mode sipload-flags...: one sipload run, with the
# CPU of every process over it (PROC CPU_SECONDS WALL_SECONDS per line). A
# pinned target's sipload runs on PIN_LOAD_CPU.
measure() {
	local t=$1 sc=$2 mode=$3
	shift 3
	local p s0 s1 name="$t-$sc-$mode" send0="" send1
	declare -A t0=()
	[ "$t" = siplb_capture ] && send0=$(capture_send_cpu || true)
	for p in "${procs[@]}"; do t0[$p]=$(ticks "${pid[$p]}"); done
	s0=$(date +%s.%N)
	local transport=udp
	[[ $t == *_tcp ]] && transport=tcp
	local on=()
	[[ $t == *_pin ]] && on=(env GOMAXPROCS=1 "${pin_load[@]}")
	"${on[@]}" "$BIN/sipload" -q -scenario "$sc" -transport "$transport" -target "${addr[$t]}" -sockets "$SOCKETS" -json "$out/$name.json" "$@" ||
		warn "$name: not every unit completed (see $name.json)"
	s1=$(date +%s.%N)
	for p in "${procs[@]}"; do
		awk -v p="$p" -v t="$(($(ticks "${pid[$p]}") - t0[$p]))" -v hz="$hz" -v a="$s0" -v b="$s1" \
			'BEGIN { printf "%s %.4f %.4f\n", p, t / hz, b - a }'
	done >"$out/$name.cpu"
	if [ "$t" = siplb_capture ] && [ -n "$send0" ] && send1=$(capture_send_cpu); then
		awk -v a="$send0" -v b="$send1" -v w0="$s0" -v w1="$s1" 'BEGIN { printf "siplb_capture_send %.4f %.4f\n", b - a, w1 - w0 }' >>"$out/$name.cpu"
	fi
}

# sat_rate ref: the saturation rate of ref's run in scenario $sc (0 when none).
sat_rate() {
	local v=0
	[ -f "$out/$1-$sc-sat.json" ] && v=$(sed -n 's/^ *"throughput_per_s": *\([0-9.]*\).*/\1/p' "$out/$1-$sc-sat.json")
	echo "${v:-0}"
}
for sc in $SCENARIOS; do
	targets=()
	for t in "${up[@]}"; do
		targets+=("$t")
		# siplb_open runs right after siplb, so the two see the same load
		# from the rest of the machine as nearly as one run allows.
		[ "$t" = siplb ] && in_list "$sc" "$DEFENCE_SCENARIOS" && targets+=("${open_up[@]}")
		# siplb_capture likewise.
		[ "$t" = siplb ] && in_list "$sc" "$CAPTURE_SCENARIOS" && targets+=("${capture_up[@]}")
	done
	in_list "$sc" "$GNET_SCENARIOS" && targets+=("${gnet_up[@]}")
	say "$sc: closed loop, window $WINDOW, $SAT_DURATION per target: ${targets[*]}"
	for t in "${targets[@]}"; do
		measure "$t" "$sc" sat -window "$WINDOW" -duration "$SAT_DURATION"
	done
	# The open-loop rate: RATE_SHARE of siplb's saturation rate (of the
	# first other target's when siplb completed nothing), the same for every
	# target.
	sat=0
	for ref in siplb "${up[@]}"; do
		sat=$(sat_rate "$ref")
		awk -v s="$sat" 'BEGIN { exit !(s > 0) }' && break
		[ "$ref" = siplb ] && warn "$sc: siplb completed nothing at saturation; the open-loop rate follows ${up[0]}"
	done
	rate=$(awk -v s="${sat:-0}" -v f="$RATE_SHARE" 'BEGIN { r = s * f; if (r < 100) r = 100; printf "%.0f", r }')
	echo "$rate $ref" >"$out/rate-$sc.txt"
	say "$sc: open loop at $rate/s ($RATE_SHARE of $ref's saturation), $RATE_DURATION per target"
	for t in "${targets[@]}"; do
		measure "$t" "$sc" rate -rate "$rate" -duration "$RATE_DURATION"
	done
	# Pinned, right after, at the same rate: the forwarder on its own core,
	# in PIN_ROUNDS rounds. Round K > 1 writes TARGET-SCENARIO-rate-K and
	# runs each unpinned target again right before its pinned one, so that
	# both placements get as many tries at a quiet moment of the machine.
	if [ ${#pin_up[@]} -gt 0 ] && in_list "$sc" "$PIN_SCENARIOS"; then
		for ((k = 1; k <= PIN_ROUNDS; k++)); do
			round=() mode=rate
			[ "$k" -gt 1 ] && mode=rate-$k
			for t in "${pin_up[@]}"; do
				[ "$k" -gt 1 ] && in_list "${t%_pin}" "${up[*]}" && round+=("${t%_pin}")
				round+=("$t")
			done
			say "$sc pinned, round $k of $PIN_ROUNDS: open loop at $rate/s, sipload and sipecho on CPU $PIN_LOAD_CPU, the forwarder on CPU $PIN_FWD_CPU, $RATE_DURATION per target: ${round[*]}"
			for t in "${round[@]}"; do
				measure "$t" "$sc" "$mode" -rate "$rate" -duration "$RATE_DURATION"
			done
		done
	fi
done

# ---- Over TCP: sipload's -sockets connections to each target.
if [ ${#tcp_up[@]} -gt 0 ]; then
	for sc in $TCP_SCENARIOS; do
		if in_list sat "$TCP_MODES"; then
			say "$sc over TCP: closed loop, window $WINDOW, $SAT_DURATION per target: ${tcp_up[*]}"
			for t in "${tcp_up[@]}"; do
				measure "$t" "$sc" sat -window "$WINDOW" -duration "$SAT_DURATION"
			done
		fi
		if in_list rate "$TCP_MODES"; then
			sat=$(sat_rate siplb_tcp)
			rate=$(awk -v s="$sat" -v f="$RATE_SHARE" 'BEGIN { r = s * f; if (r < 100) r = 100; printf "%.0f", r }')
			say "$sc over TCP: open loop at $rate/s ($RATE_SHARE of siplb_tcp's saturation), $RATE_DURATION per target"
			for t in "${tcp_up[@]}"; do
				measure "$t" "$sc" rate -rate "$rate" -duration "$RATE_DURATION"
			done
		fi
	done
fi

# ---- Across transports: a TCP client to UDP backends (siplb_cross_tcp),
# beside TCP to TCP (siplb_tcp) at the same open-loop rate.
if [ ${#cross_up[@]} -gt 0 ]; then
	for sc in $CROSS_SCENARIOS; do
		if in_list sat "$CROSS_MODES"; then
			say "$sc, TCP client to UDP backends: closed loop, window $WINDOW, $SAT_DURATION"
			measure siplb_cross_tcp "$sc" sat -window "$WINDOW" -duration "$SAT_DURATION"
		fi
		if in_list rate "$CROSS_MODES"; then
			ref=siplb_tcp
			sat=$(sat_rate siplb_tcp)
			if ! awk -v s="$sat" 'BEGIN { exit !(s > 0) }'; then
				ref=siplb_cross_tcp
				sat=$(sat_rate siplb_cross_tcp)
			fi
			rate=$(awk -v s="$sat" -v f="$RATE_SHARE" 'BEGIN { r = s * f; if (r < 100) r = 100; printf "%.0f", r }')
			# siplb_tcp at this rate already ran when TCP_MODES has rate.
			targets=(siplb_cross_tcp)
			if [[ " ${tcp_up[*]} " == *" siplb_tcp "* ]] && ! { in_list rate "$TCP_MODES" && in_list "$sc" "$TCP_SCENARIOS"; }; then
				targets=(siplb_tcp siplb_cross_tcp)
			fi
			say "$sc, TCP client to UDP backends: open loop at $rate/s ($RATE_SHARE of $ref's saturation), $RATE_DURATION per target: ${targets[*]}"
			for t in "${targets[@]}"; do
				measure "$t" "$sc" rate -rate "$rate" -duration "$RATE_DURATION"
			done
		fi
	done
fi

say "report"
"$BIN/benchreport" -dir "$out" | tee "$out/report.md"
echo "results: $out"
