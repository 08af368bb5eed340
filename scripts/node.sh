#!/usr/bin/env bash
# Starts and stops the `make run` node in the background.
#   scripts/node.sh restart LISTEN   (re)start bin/sostenuto serve; wait for /api/ready
#   scripts/node.sh stop             SIGTERM it (graceful drain), SIGKILL after 30 s
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR="$ROOT/.data/run"
PIDFILE="$DIR/node.pid"
LOG="$DIR/node.log"
CERTS="$DIR/certs"

# shellcheck source=bg.sh
. "$ROOT/scripts/bg.sh"
stop() { bg_stop node "$PIDFILE"; }

case "${1:-}" in
restart)
	listen=${2:-:8080}
	stop
	mkdir -p "$DIR"
	cd "$ROOT"
	# The Raft transport runs on mutual TLS here too: a CA and this node's
	# certificate (for its Raft address, 127.0.0.1), made once.
	[ -f "$CERTS/local.pem" ] || "$ROOT/bin/sostenuto" cluster certs --dir "$CERTS" --nodes local=127.0.0.1 >/dev/null
	SOSTENUTO_LISTEN="$listen" SOSTENUTO_DATA_DIR="$DIR" SOSTENUTO_RAFT_TLS_CA="$CERTS/ca.pem" \
		SOSTENUTO_RAFT_TLS_CERT="$CERTS/local.pem" SOSTENUTO_RAFT_TLS_KEY="$CERTS/local-key.pem" \
		nohup "$ROOT/bin/sostenuto" serve >>"$LOG" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	port=${listen##*:}
	bg_wait node "$PIDFILE" "$LOG" "http://127.0.0.1:$port/api/ready" 60
	echo "node: ready on http://localhost:$port (pid $(cat "$PIDFILE"), log $LOG; make logs, make stop)"
	;;
stop) stop ;;
*) echo "usage: $0 restart LISTEN | stop" >&2; exit 2 ;;
esac
