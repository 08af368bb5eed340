#!/usr/bin/env bash
# Starts and stops the `make run` node in the background.
#   scripts/node.sh restart LISTEN   (re)start bin/sostenuto serve; wait for /api/ready
#   scripts/node.sh stop             SIGTERM it (graceful drain), SIGKILL after 30 s
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.data/run"
PIDFILE="$DIR/node.pid"
LOG="$DIR/node.log"

alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

stop() {
	alive || { rm -f "$PIDFILE"; return 0; }
	local pid; pid=$(cat "$PIDFILE")
	kill -TERM "$pid"
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	rm -f "$PIDFILE"
	echo "node: stopped (pid $pid)"
}

case "${1:-}" in
restart)
	listen=${2:-:8080}
	stop
	mkdir -p "$DIR"
	cd "$ROOT"
	SOSTENUTO_LISTEN="$listen" SOSTENUTO_DATA_DIR="$DIR" nohup "$ROOT/bin/sostenuto" serve >>"$LOG" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	port=${listen##*:}
	for _ in $(seq 1 600); do
		if ! alive; then
			echo "node: exited during start-up; last log lines:" >&2
			tail -n 20 "$LOG" >&2
			exit 1
		fi
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/api/ready" 2>/dev/null; then
			echo "node: ready on http://localhost:$port (pid $(cat "$PIDFILE"), log $LOG; make logs, make stop)"
			exit 0
		fi
		sleep 0.1
	done
	echo "node: not ready after 60 s; see $LOG" >&2
	exit 1
	;;
stop) stop ;;
*) echo "usage: $0 restart LISTEN | stop" >&2; exit 2 ;;
esac
