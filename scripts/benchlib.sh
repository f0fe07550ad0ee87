# benchlib.sh — what bench-cross.sh and bench-capture.sh share; sourced,
# after `out` (the results folder) is set.
#
# start NAME COMMAND... runs COMMAND in the background, its output in
# $out/NAME.log, its PID in pid[NAME] and in pids; on exit every one is
# sent TERM, then KILL if it still runs 10 s later, and waited for.

pids=()
declare -A pid=()
cleanup() { # TERM, then KILL whatever still runs 10 s later
	local p i
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < 100; i++)); do
		local alive=0
		for p in "${pids[@]}"; do [ "$(sed 's/^.*) //; s/ .*//' /proc/"$p"/stat 2>/dev/null || echo Z)" != Z ] && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # name command...
	local name=$1
	shift
	"$@" >"$out/$name.log" 2>&1 &
	pid[$name]=$!
	pids+=($!)
}

hz=$(getconf CLK_TCK)
# ticks PID: its user + system CPU so far, in ticks of 1/hz s.
ticks() { local f; f=$(sed 's/^.*) //' /proc/"$1"/stat) && set -- $f && echo $((${12} + ${13})); }
# cpuns PID: the CPU time its threads have run so far, in ns (user and
# system, from /proc/PID/task/*/schedstat): exact where ticks are 10 ms.
# A thread that exited takes its time with it; Go's threads do not exit.
cpuns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
# field FILE NAME [N]: the N-th (default first) value of "NAME" in a sipload -json.
field() { sed -n "s/^ *\"$2\": *\([0-9.]*\).*/\1/p" "$1" | sed -n "${3:-1}p"; }
# median: of the numbers on standard input, one a line; "-" for none.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
