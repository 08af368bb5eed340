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

alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

stop() {
	alive || { rm -f "$PIDFILE"; return 0; }
	local pid; pid=$(cat "$PIDFILE")
	kill -TERM "$pid"
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	rm -f "$PIDFILE"
	echo "edge: stopped (pid $pid)"
}

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
	for _ in $(seq 1 300); do
		if ! alive; then
			echo "edge: exited during start-up; last log lines:" >&2
			tail -n 20 "$LOG" >&2
			exit 1
		fi
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/edge/health" 2>/dev/null; then
			echo "edge: ready on http://localhost:$port in front of $node (pid $(cat "$PIDFILE"), log $LOG)"
			exit 0
		fi
		sleep 0.1
	done
	echo "edge: no healthy node after 30 s (is \`make run\` up?); see $LOG" >&2
	exit 1
	;;
stop) stop ;;
*) echo "usage: $0 restart EDGE_LISTEN NODE_URL | stop" >&2; exit 2 ;;
esac
