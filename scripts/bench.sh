#!/usr/bin/env bash
# bench.sh: micro-benchmarks (parser, forwarding, balance, parser vs sipgo),
# then sipload through siplb next to the same load straight to a backend, in
# one run on this machine. Results land in benchmarks/results/RUN/.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
N=${N:-100000}        # OPTIONS transactions per path
CALLS=${CALLS:-30000} # calls per path
WINDOW=${WINDOW:-200}
LOOPS=${LOOPS:-1}     # siplb event loops; on 2 cores the rest is for sipload and sipecho
out="benchmarks/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

{
	echo "date: $(date -u +%FT%TZ)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "cores: $(nproc)"
	echo "go: $(go version)"
	echo "siplb: $("$BIN/siplb" --version)"
} | tee "$out/machine.txt"

echo "== micro-benchmarks"
go test -run '^$' -bench . -benchmem ./parser ./engine ./balance | tee "$out/micro.txt"
(cd benchmarks && go test -run '^$' -bench 'Parse' -benchmem .) | tee "$out/parser-vs-sipgo.txt"

echo "== load: sipload → sipecho, straight and through siplb (loops=$LOOPS)"
"$BIN/sipecho" -q -listen 127.0.0.1:25070 -listen 127.0.0.1:25071 -listen 127.0.0.1:25072 &
pids+=($!)
"$BIN/siplb" --listen udp://127.0.0.1:25060 --loops "$LOOPS" --log-level warn \
	--backend udp://127.0.0.1:25070 --backend udp://127.0.0.1:25071 --backend udp://127.0.0.1:25072 &
lb=$!
pids+=($lb)
sleep 0.5

cputicks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for sc in options call; do
	n=$N
	[ "$sc" = call ] && n=$CALLS
	"$BIN/sipload" -q -scenario "$sc" -target 127.0.0.1:25070 -n "$n" -window "$WINDOW" -duration 60s -json "$out/direct-$sc.json" || true
	t0=$(cputicks "$lb")
	s0=$(date +%s.%N)
	"$BIN/sipload" -q -scenario "$sc" -target 127.0.0.1:25060 -n "$n" -window "$WINDOW" -duration 60s -json "$out/siplb-$sc.json" || true
	s1=$(date +%s.%N)
	t1=$(cputicks "$lb")
	awk -v t="$((t1 - t0))" -v hz="$hz" -v a="$s0" -v b="$s1" 'BEGIN { printf "%.3f\n", t / hz / (b - a) }' >"$out/siplb-$sc.cpu"
done
(cd benchmarks && go run ./cmd/benchreport -dir "../$out" options call) | tee "$out/load.txt"
echo "results: $out"
