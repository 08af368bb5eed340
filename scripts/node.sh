#!/usr/bin/env bash
# Starts and stops the `make run` node in the background.
#   scripts/node.sh restart LISTEN   (re)start bin/sostenuto serve; wait for /api/ready
#   scripts/node.sh stop             SIGTERM it (graceful drain), SIGKILL after 30 s
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.data/run"
PIDFILE="$DIR/node.pid"
LOG="$DIR/node.log"

# shellcheck source=bg.sh
. "$ROOT/scripts/bg.sh"
stop() { bg_stop node "$PIDFILE"; }

case "${1:-}" in
restart)
	listen=${2:-:8080}
	stop
	mkdir -p "$DIR"
	cd "$ROOT"
	SOSTENUTO_LISTEN="$listen" SOSTENUTO_DATA_DIR="$DIR" nohup "$ROOT/bin/sostenuto" serve >>"$LOG" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	port=${listen##*:}
	bg_wait node "$PIDFILE" "$LOG" "http://127.0.0.1:$port/api/ready" 60
	echo "node: ready on http://localhost:$port (pid $(cat "$PIDFILE"), log $LOG; make logs, make stop)"
	;;
stop) stop ;;
*) echo "usage: $0 restart LISTEN | stop" >&2; exit 2 ;;
esac
