#!/usr/bin/env bash
# pgo.sh: refresh cmd/siplb/default.pgo, the CPU profile `go build` uses
# for profile-guided optimization of siplb (-pgo=auto). The profile is
# siplb's own (/debug/pprof/profile on its admin listener) while the
# benchmark's load generator drives it, closed loop, over the loads of
# `make bench`: UDP OPTIONS, calls and REGISTER, then calls over TCP, 6 s
# each, to three sipecho backends, all on 127.0.0.1. Run it after a change
# moves the hot path (make pgo), and commit the new profile with it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
PORT_BASE=${PORT_BASE:-29060} # siplb UDP +0, TCP +1, admin +9; sipecho +10..+12
DURATION=${DURATION:-6s}
out=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$out"
}
trap cleanup EXIT
h=127.0.0.1
p() { echo $((PORT_BASE + $1)); }
"$BIN/sipecho" -q -tcp -listen "$h:$(p 10)" -listen "$h:$(p 11)" -listen "$h:$(p 12)" >"$out/sipecho.log" 2>&1 &
pids+=($!)
cat >"$out/siplb.yaml" <<Y
listen:
  - address: udp://$h:$(p 0)
  - address: tcp://$h:$(p 1)
pools:
  - name: pgo
    algorithm: hash-callid
    backends:
      - address: udp://$h:$(p 10)
      - address: udp://$h:$(p 11)
      - address: udp://$h:$(p 12)
    health:
      disabled: true
engine:
  loops: 2
admin:
  listen: $h:$(p 9)
log:
  level: warn
security:
  flood:
    window: 1s
    density: 524288
Y
# The profile is of a binary built without one, as Go's PGO guide asks.
CGO_ENABLED=0 go build -pgo=off -o "$out/siplb" ./cmd/siplb
"$out/siplb" --config "$out/siplb.yaml" >"$out/siplb.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	curl -sf "http://$h:$(p 9)/healthz" >/dev/null && break
	sleep 0.1
done
secs=$((4 * ${DURATION%s} + 2))
curl -sf -o "$out/cpu.pprof" "http://$h:$(p 9)/debug/pprof/profile?seconds=$secs" &
prof=$!
for sc in options call register; do
	"$BIN/sipload" -q -scenario "$sc" -transport udp -target "$h:$(p 0)" -sockets 4 -window 200 -duration "$DURATION" || true
done
"$BIN/sipload" -q -scenario call -transport tcp -target "$h:$(p 1)" -sockets 4 -window 200 -duration "$DURATION" || true
wait "$prof"
cp "$out/cpu.pprof" cmd/siplb/default.pgo
echo "pgo: cmd/siplb/default.pgo refreshed ($(wc -c <cmd/siplb/default.pgo) bytes, ${secs}s of siplb under load)"
