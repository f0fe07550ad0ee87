#!/usr/bin/env bash
# demo-cluster.sh: three siplb instances on 127.0.0.1, 127.0.0.2 and
# 127.0.0.3 (SIP :5060, admin :9060, gossip :7946, one encrypted
# memberlist cluster) in front of three sipecho backends on
# 127.0.0.1:5070-5072, with sipload calls spread over the three:
#   1. the cluster forms; each backend is probed by one instance;
#   2. every instance routes a Call-ID to the same backend (siplb ctl route);
#   3. a drain set on one instance holds on all (timed), and no new call
#      reaches the drained backend through any of them;
#   4. a backend is killed: every instance takes it out (timed);
#   5. an instance is upgraded (siplb upgrade) while calls run through all
#      three: 0 calls lost, the new process rejoins under the same name;
#   6. an instance is killed (SIGKILL, no goodbye): its probing moves to
#      the others (timed), which still find a dead backend.
# Bounded in time; every process started here is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
CALLS=${CALLS:-1500} # per phase, spread over the three instances
WINDOW=${WINDOW:-30}
tmp=$(mktemp -d)
pids=()
declare -A echo_pid lb_pid

cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# crash PID: SIGKILL, and reap it quietly
crash() { kill -KILL "$1"; { wait "$1"; } 2>/dev/null || true; }
fail() { echo "demo-cluster: FAILED: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
ctl() { local n=$1; shift; "$BIN/siplb" ctl --admin "127.0.0.$n:9060" "$@"; }
# until CMD succeeds, at most $1 seconds; prints how long it took (ms)
until_ok() {
	local limit=$1; shift
	local start; start=$(now_ms)
	while ! "$@" >/dev/null 2>&1; do
		if [ $(($(now_ms) - start)) -gt $((limit * 1000)) ]; then return 1; fi
		sleep 0.02
	done
	echo $(($(now_ms) - start))
}
# state N ADDR: the state instance N gives backend ADDR
state() { ctl "$1" list | awk -v a="$2" '$2 == a { print $6 }'; }
state_is() { [ "$(state "$1" "$2")" = "$3" ]; }
all_state() { for n in "${live[@]}"; do state_is "$n" "$1" "$2" || return 1; done; }
owner() { ctl "$1" cluster | awk -v a="$2" '$1 == a && NF == 2 { print $2 }'; }
# alive members in the first table of `siplb ctl cluster` (after the header)
alive_members() { ctl "$1" cluster | awk 'NR > 3 && NF == 0 { exit } NR > 3 && / alive / { n++ } END { print n + 0 }'; }

start_echo() { # port
	"$BIN/sipecho" -q -listen "127.0.0.1:$1" -stats "$tmp/echo-$1.json" &
	echo_pid[$1]=$!
	pids+=($!)
	for try in $(seq 50); do
		if "$BIN/sipload" -q -scenario options -target "127.0.0.1:$1" -n 1 -timeout 100ms -drain 0s -duration 1s; then return 0; fi
	done
	fail "sipecho does not answer on $1"
}

# INVITEs backend PORT answered so far (SIGUSR1 makes sipecho write them).
invites() {
	local f="$tmp/echo-$1.json"
	rm -f "$f"
	kill -USR1 "${echo_pid[$1]}" 2>/dev/null || { echo 0; return; }
	for _ in $(seq 50); do [ -s "$f" ] && break; sleep 0.1; done
	awk '/"INVITE"/ { gsub(/[^0-9]/, "", $2); print $2; found = 1; exit } END { if (!found) print 0 }' "$f"
}
counts() { for p in 5070 5071 5072; do printf '%s ' "$(invites $p)"; done; }

# load [SIPLOAD ARGS]: CALLS calls, a third through each live instance at
# once; the arguments go to each sipload (e.g. -rate).
load() {
	local each=$((CALLS / ${#live[@]})) lp=() st=0
	for n in "${live[@]}"; do
		"$BIN/sipload" -target "127.0.0.$n:5060" -scenario call -n "$each" -window "$WINDOW" -duration 60s "$@" -json "$tmp/load-$n.json" >"$tmp/load-$n.txt" 2>&1 &
		lp+=($!)
	done
	for p in "${lp[@]}"; do wait "$p" || st=1; done
	for n in "${live[@]}"; do
		awk -v via="127.0.0.$n" '$1 == "sent" { s = $2 } $1 == "completed" { c = $2 } $1 == "failed" { f = $2 } $1 == "lost" { l = $2 }
			END { printf "   via %s: %d calls sent, %d completed, %d failed, %d lost\n", via, s, c, f, l }' "$tmp/load-$n.txt"
	done
	return $st
}

key=$(head -c 32 /dev/urandom | base64)
echo "== three backends (sipecho) on 127.0.0.1:5070-5072"
for p in 5070 5071 5072; do start_echo $p; done

echo "== three siplb instances on 127.0.0.1-3, one cluster (gossip encrypted with a fresh key)"
for n in 1 2 3; do
	cat >"$tmp/lb$n.yaml" <<EOF
listen:
  - address: udp://127.0.0.$n:5060
pools:
  - name: demo
    health: {interval: 1s, timeout: 300ms, fall: 1, rise: 1, down_interval: 500ms}
    backends:
      - address: udp://127.0.0.1:5070
      - address: udp://127.0.0.1:5071
      - address: udp://127.0.0.1:5072
admin:
  listen: 127.0.0.$n:9060
log:
  level: warn
cluster:
  enabled: true
  name: lb-$n
  bind: 127.0.0.$n:7946
  key: $key
  join: [127.0.0.1:7946, 127.0.0.2:7946, 127.0.0.3:7946]
EOF
	mkdir -p "$tmp/state$n"
	STATE_DIRECTORY="$tmp/state$n" "$BIN/siplb" --config "$tmp/lb$n.yaml" --pid-file "$tmp/lb$n.pid" 2>"$tmp/lb$n.log" &
	lb_pid[$n]=$!
	pids+=($!)
done
live=(1 2 3)
for n in 1 2 3; do
	until_ok 10 ctl "$n" list >/dev/null || fail "instance $n does not answer on 127.0.0.$n:9060 (log: $(tail -3 "$tmp/lb$n.log"))"
done
three_alive() { for n in 1 2 3; do [ "$(alive_members "$n")" -eq 3 ] || return 1; done; }
took=$(until_ok 15 three_alive) || { ctl 1 cluster || true; fail "the cluster did not form in 15s"; }
echo "   formed in ${took} ms"
ctl 1 cluster

echo "== the same Call-ID reaches the same backend through every instance"
printf '   %-16s %-16s %-16s %-16s\n' Call-ID 127.0.0.1 127.0.0.2 127.0.0.3
for i in 1 2 3 4 5; do
	id="demo-call-$i@example.com"
	r1=$(ctl 1 route demo "$id"); r2=$(ctl 2 route demo "$id"); r3=$(ctl 3 route demo "$id")
	printf '   %-16s %-16s %-16s %-16s\n' "call-$i" "$r1" "$r2" "$r3"
	[ "$r1" = "$r2" ] && [ "$r2" = "$r3" ] || fail "instances route $id apart"
done

status=0
before=$(counts)
echo "== $CALLS calls over the three instances"
load || status=1
echo "   INVITEs per backend 5070 5071 5072: before [$before] after [$(counts)]"

echo "== drain 127.0.0.1:5071 through instance 2 only"
ctl 2 drain demo 127.0.0.1:5071 >/dev/null
took=$(until_ok 5 all_state 127.0.0.1:5071 draining) || fail "the drain did not reach every instance in 5s"
echo "   draining on all three after ${took} ms (polled with siplb ctl list; within 1 s asked)"
before=$(invites 5071)
load || status=1
after=$(invites 5071)
echo "   new calls 127.0.0.1:5071 took while drained: $((after - before))"
[ "$after" -eq "$before" ] || fail "the drained backend took new calls"
ctl 3 undrain demo 127.0.0.1:5071 >/dev/null
until_ok 5 all_state 127.0.0.1:5071 up >/dev/null || fail "the undrain did not reach every instance"
echo "   undrained through instance 3: up on all three"

echo "== kill the backend 127.0.0.1:5072 (probed by $(owner 1 127.0.0.1:5072))"
crash "${echo_pid[5072]}"
took=$(until_ok 5 all_state 127.0.0.1:5072 down) || fail "the dead backend stayed in rotation somewhere"
echo "   down on all three after ${took} ms (polled; within probe interval 1 s + 1 s asked)"
ctl 2 list
start_echo 5072
until_ok 5 all_state 127.0.0.1:5072 up >/dev/null || fail "the backend did not come back"
echo "   restarted: up on all three"

echo "== upgrade instance 1 (siplb upgrade: a new process takes its sockets) while $((2 * CALLS)) calls run over all three, $((2 * CALLS / 3 / 4)) a second through each (4 s)"
old=${lb_pid[1]}
(CALLS=$((2 * CALLS)) load -rate $((2 * CALLS / 3 / 4))) >"$tmp/upgrade-load.txt" 2>&1 &
loader=$!
sleep 0.3
t0=$(now_ms)
up_st=0
"$BIN/siplb" upgrade --admin 127.0.0.1:9060 --timeout 30s || up_st=$?
ready_ms=$(($(now_ms) - t0))
still_calling=0
kill -0 "$loader" 2>/dev/null && still_calling=1
new=$(cat "$tmp/lb1.pid" 2>/dev/null || true)
if [ -n "$new" ] && [ "$new" != "$old" ]; then
	pids+=("$new") # stopped by cleanup whatever happens next
	lb_pid[1]=$new
	upgraded=$new
fi
[ "$up_st" -eq 0 ] || fail "the upgrade of instance 1 failed (log: $(tail -3 "$tmp/lb1.log"))"
echo "   the new process was ready after ${ready_ms} ms"
[ "$still_calling" -eq 1 ] || fail "the calls ended before the upgrade did: raise CALLS"
st=0
wait "$old" || st=$?
[ "$st" -eq 0 ] || fail "the old process of instance 1 exited $st"
[ -n "${upgraded:-}" ] && kill -0 "$upgraded" || fail "no new process for instance 1"
wait "$loader" || status=1
cat "$tmp/upgrade-load.txt"
echo "   instance 1: pid $old handed over to pid $new, the old one exited 0 (the calls ran on through the upgrade)"
took=$(until_ok 15 three_alive) || { ctl 1 cluster || true; fail "the upgraded instance did not rejoin in 15s"; }
echo "   three members alive again after ${took} ms"

victim=$(owner 1 127.0.0.1:5070)
vn=${victim#lb-}
echo "== SIGKILL instance $victim, which probes 127.0.0.1:5070 (no leave: memberlist's failure detection)"
crash "${lb_pid[$vn]}"
live=()
for n in 1 2 3; do [ "$n" != "$vn" ] && live+=("$n"); done
moved() { for n in "${live[@]}"; do o=$(owner "$n" 127.0.0.1:5070); [ -n "$o" ] && [ "$o" != "$victim" ] || return 1; done; }
took=$(until_ok 20 moved) || fail "the probing of $victim did not move in 20s"
echo "   127.0.0.1:5070 is probed by $(owner "${live[0]}" 127.0.0.1:5070) after ${took} ms"
ctl "${live[0]}" cluster
crash "${echo_pid[5070]}"
took=$(until_ok 5 all_state 127.0.0.1:5070 down) || fail "a backend of the dead instance went unprobed"
echo "   127.0.0.1:5070 killed: down on the two instances left after ${took} ms"
load || status=1

echo "== SIGTERM the instances left: each drains, leaves the cluster and exits 0"
for n in "${live[@]}"; do
	p=${lb_pid[$n]}
	kill -TERM "$p"
	if [ "$p" = "${upgraded:-}" ]; then
		# not a child of this script (the old process started it): wait for
		# it to go, bounded; its exit status is in its log, not here
		for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -0 "$p" 2>/dev/null && fail "instance $n (pid $p) did not exit in 30s"
		continue
	fi
	st=0
	wait "$p" || st=$?
	[ "$st" -eq 0 ] || fail "instance $n exited $st"
done
[ "$status" -eq 0 ] || fail "calls were lost (see the sipload lines above)"
echo "demo-cluster: same routes on every instance, drain and backend death seen by all, an upgrade under load lost nothing, probing moved off a dead instance"
