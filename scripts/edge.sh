#!/usr/bin/env bash
# Starts and stops a sostenuto-edge in front of the `make run` node.
#   scripts/edge.sh restart EDGE_LISTEN NODE_URL   (re)start; wait for /edge/health
#   scripts/edge.sh stop
# The edge streams PDFs from the node's local blob store (.data/run/blobs)
# and keeps its answer cache in .data/run/edge-cache.gob across restarts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.data/run"
PIDFILE="$DIR/edge.pid"
LOG="$DIR/edge.log"

# shellcheck source=bg.sh
. "$ROOT/scripts/bg.sh"
stop() { bg_stop edge "$PIDFILE"; }

case "${1:-}" in
restart)
	listen=${2:-:8090}
	node=${3:-http://127.0.0.1:8080}
	stop
	mkdir -p "$DIR"
	cd "$ROOT"
	SOSTENUTO_EDGE_LISTEN="$listen" SOSTENUTO_EDGE_NODES="$node" SOSTENUTO_EDGE_BLOB_BACKEND=local \
		SOSTENUTO_EDGE_BLOB_DIR="$DIR/blobs" SOSTENUTO_EDGE_CACHE_FILE="$DIR/edge-cache.gob" \
		nohup "$ROOT/bin/sostenuto-edge" >>"$LOG" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	port=${listen##*:}
	bg_wait edge "$PIDFILE" "$LOG" "http://127.0.0.1:$port/edge/health" 30 ||
		{ echo "edge: is \`make run\` up?" >&2; exit 1; }
	echo "edge: ready on http://localhost:$port in front of $node (pid $(cat "$PIDFILE"), log $LOG)"
	;;
stop) stop ;;
*) echo "usage: $0 restart EDGE_LISTEN NODE_URL | stop" >&2; exit 2 ;;
esac
