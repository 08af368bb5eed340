#!/usr/bin/env bash
# The Cloudflare Worker (edge/worker) on this machine.
#   scripts/edge-worker.sh build                 the rules' Wasm and wasm_exec.js into edge/worker/build
#   scripts/edge-worker.sh dev PORT NODE_URL     `wrangler dev` on 127.0.0.1:PORT in front of NODE_URL,
#                                                 with local R2 (under .data/run/wrangler) filled from the
#                                                 node's local blob store (.data/run/blobs) by the blob mirror
#   scripts/edge-worker.sh stop
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W="$ROOT/edge/worker"
DIR="$ROOT/.data/run"
PIDFILE="$DIR/edge-worker.pid"
MIRROR_PIDFILE="$DIR/blob-mirror.pid"
LOG="$DIR/edge-worker.log"
MIRROR_PORT=${MIRROR_PORT:-8788}
export PATH="$W/node_modules/.bin:/usr/local/go/bin:$PATH"

# shellcheck source=bg.sh
. "$ROOT/scripts/bg.sh"

build() {
	mkdir -p "$W/build"
	(cd "$W" && GOOS=js GOARCH=wasm go build -trimpath -ldflags="-s -w" -o build/rules.wasm ./wasm)
	cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$W/build/wasm_exec.js"
}

stop() {
	bg_stop edge-worker "$PIDFILE"
	bg_stop blob-mirror "$MIRROR_PIDFILE"
}

case "${1:-}" in
build) build ;;
dev)
	port=${2:-8787}
	node=${3:-http://127.0.0.1:8080}
	stop
	mkdir -p "$DIR/blobs" "$DIR/wrangler"
	nohup node "$W/test/blob-mirror.mjs" "$DIR/blobs" "$MIRROR_PORT" >>"$LOG" 2>&1 </dev/null &
	echo $! >"$MIRROR_PIDFILE"
	cd "$W"
	WRANGLER_SEND_METRICS=false nohup wrangler dev --ip 127.0.0.1 --port "$port" --persist-to "$DIR/wrangler" --show-interactive-dev-session=false \
		--var "NODES:$node" --var "BLOB_MIRROR:http://127.0.0.1:$MIRROR_PORT" >>"$LOG" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	bg_wait edge-worker "$PIDFILE" "$LOG" "http://127.0.0.1:$port/edge/health" 60 ||
		{ echo "edge-worker: is \`make run\` up?" >&2; exit 1; }
	echo "edge-worker: ready on http://localhost:$port in front of $node (pid $(cat "$PIDFILE"), log $LOG)"
	;;
stop) stop ;;
*) echo "usage: $0 build | dev PORT NODE_URL | stop" >&2; exit 2 ;;
esac
