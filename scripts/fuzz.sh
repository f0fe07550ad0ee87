#!/usr/bin/env bash
# fuzz.sh — every fuzz target of ./fuzz, ./parser and ./engine in turn, for
# FUZZTIME each (`make fuzz`).
#
# A target fails when it writes a failing input (testdata/fuzz/TARGET/) or
# exits non-zero for another reason than the Go 1.26 coordinator's race at
# the end of a -fuzztime (go.dev/issue/75804, fixed in Go 1.27): the run
# ends with "context deadline exceeded", no input written. That one is
# reported as a flake and run again once; a second one fails.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}

corpus() { find "$1/testdata/fuzz/$2" -type f 2>/dev/null | sort; }
failed=0
for p in ./fuzz ./parser ./engine; do
	for t in $($GO test -list '^Fuzz' "$p" | grep '^Fuzz'); do
		for try in 1 2; do
			before=$(corpus "$p" "$t")
			log=$(mktemp)
			$GO test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$p" 2>&1 | tee "$log"
			rc=${PIPESTATUS[0]}
			after=$(corpus "$p" "$t")
			if [ "$rc" = 0 ]; then
				rm -f "$log"
				break
			fi
			if [ "$before" != "$after" ]; then
				echo "fuzz: $t ($p) wrote a failing input: $(comm -13 <(echo "$before") <(echo "$after"))" >&2
				failed=1
			elif grep -q 'context deadline exceeded' "$log" && [ "$try" = 1 ]; then
				echo "fuzz: $t ($p): 'context deadline exceeded' with no failing input (go.dev/issue/75804); once more" >&2
				rm -f "$log"
				continue
			else
				echo "fuzz: $t ($p) failed (exit $rc)" >&2
				failed=1
			fi
			rm -f "$log"
			break
		done
		[ "$failed" = 0 ] || exit 1
	done
done
