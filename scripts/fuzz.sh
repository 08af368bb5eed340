#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints how many inputs each
# executed. `make fuzz` calls it; FUZZTIME (default 30s) bounds each target.
#   scripts/fuzz.sh [--save]   --save copies the inputs the fuzzer found
#                              interesting into the packages' testdata/fuzz,
#                              so they join the committed seed corpora that
#                              `make test` runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH=/usr/local/go/bin:$PATH
FUZZTIME=${FUZZTIME:-30s}
SAVE=${1:-}
TARGETS="
./server FuzzDecodeBodies
./server FuzzAnnotationContent
./server/auth FuzzVerifyAccess
./server/ingest FuzzExtractArticle
./server/ingest FuzzParseCaptions
./server/ingest FuzzChunker
./server/ingest FuzzCheckURL
./server/pdf FuzzInspect
./replication FuzzDecodeEntry
"
cache=$(go env GOCACHE)/fuzz/github.com/sostenuto/sostenuto
printf '%-32s %-16s %12s %12s\n' target package executions interesting
failed=0
while read -r pkg target; do
	[ -n "$pkg" ] || continue
	log=$(mktemp)
	# Minimizing a new input is bounded too, so the time goes to fuzzing.
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5s "$pkg" >"$log" 2>&1; then
		failed=1
		echo "FAIL $target:" >&2
		tail -n 30 "$log" >&2
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
	interesting=$(grep -o 'total: [0-9]*' "$log" | tail -1 | awk '{print $2}')
	printf '%-32s %-16s %12s %12s\n' "$target" "${pkg#./}" "${execs:-0}" "${interesting:-0}"
	if [ "$SAVE" = "--save" ] && [ -d "$cache/${pkg#./}/$target" ]; then
		mkdir -p "${pkg}/testdata/fuzz/$target"
		cp -n "$cache/${pkg#./}/$target/"* "${pkg}/testdata/fuzz/$target/" 2>/dev/null || true
	fi
	rm -f "$log"
done <<<"$TARGETS"
exit $failed
