#!/usr/bin/env bash
# A three-process Sostenuto cluster on one machine, for trying replication:
# nodes n1, n2, n3 listen on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all
# loopback), API port 8180, Raft port 7100, against the `make run`
# PostgreSQL. n1 founds the cluster; n2 and n3 join it with the shared
# secret; Raft runs on mutual TLS with certificates made once in
# .data/cluster/certs. One cluster per database: `up` stops the `make run`
# node first.
#
#   scripts/cluster.sh up          build, start the three nodes, wait until ready
#   scripts/cluster.sh status      each node's /api/cluster/status (as an admin)
#   scripts/cluster.sh kill NODE   SIGKILL one node (n1, n2 or n3)
#   scripts/cluster.sh start NODE  start one node again from its data directory
#   scripts/cluster.sh down        stop all three (SIGTERM, graceful)
#   scripts/cluster.sh destroy     down, then delete their Raft state
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN="$ROOT/.data/run"             # shared: database_url, JWT key, blobs
DIR="$ROOT/.data/cluster"         # per node: Raft log, snapshots, pid, log
CERTS="$DIR/certs"                # the Raft transport's CA and node certificates
ADMINPW="$RUN/cluster-admin-password"
ADMIN="cluster-admin@sostenuto.example"
API_PORT=8180
RAFT_PORT=7100
NODES=(n1 n2 n3)

ip_of() { echo "127.0.0.${1#n}"; }
alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

# launch starts one node in the background.
launch() {
	local n=$1 ip; ip=$(ip_of "$1")
	alive "$n" && { echo "$n: already running (pid $(cat "$DIR/$n.pid"))"; return 0; }
	mkdir -p "$DIR/$n"
	local join=()
	[ "$n" != n1 ] && join=("SOSTENUTO_JOIN=http://127.0.0.1:$API_PORT")
	env SOSTENUTO_NODE_ID="$n" SOSTENUTO_LISTEN="$ip:$API_PORT" SOSTENUTO_RAFT_BIND="$ip:$RAFT_PORT" \
		SOSTENUTO_RAFT_DIR="$DIR/$n" SOSTENUTO_DATA_DIR="$RUN" SOSTENUTO_CLUSTER_SECRET_FILE="$DIR/secret" \
		SOSTENUTO_RAFT_TLS_CA="$CERTS/ca.pem" SOSTENUTO_RAFT_TLS_CERT="$CERTS/$n.pem" SOSTENUTO_RAFT_TLS_KEY="$CERTS/$n-key.pem" \
		"${join[@]}" nohup "$ROOT/bin/sostenuto" serve >>"$DIR/$n.log" 2>&1 </dev/null &
	echo $! >"$DIR/$n.pid"
}

# await waits until a node answers /api/ready (a restarted cluster needs a
# majority up before any node is ready, so all are launched first).
await() {
	local n=$1 ip; ip=$(ip_of "$1")
	for _ in $(seq 1 600); do
		if ! alive "$n"; then
			echo "$n: exited during start-up; last log lines:" >&2
			tail -n 20 "$DIR/$n.log" >&2
			return 1
		fi
		if curl -fsS -o /dev/null "http://$ip:$API_PORT/api/ready" 2>/dev/null; then
			echo "$n: ready on http://$ip:$API_PORT (Raft $ip:$RAFT_PORT, pid $(cat "$DIR/$n.pid"), log $DIR/$n.log)"
			return 0
		fi
		sleep 0.1
	done
	echo "$n: not ready after 60 s; see $DIR/$n.log" >&2
	return 1
}

stop_node() {
	local n=$1
	alive "$n" || { rm -f "$DIR/$n.pid"; return 0; }
	local pid; pid=$(cat "$DIR/$n.pid")
	kill -TERM "$pid"
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	rm -f "$DIR/$n.pid"
	echo "$n: stopped"
}

# token signs in the cluster's administrator (created once; its password is
# kept in .data/run/cluster-admin-password).
token() {
	if [ ! -f "$ADMINPW" ]; then
		local pw; pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
		printf '%s\n' "$pw" | SOSTENUTO_DATA_DIR="$RUN" \
			"$ROOT/bin/sostenuto" admin create --email "$ADMIN" >/dev/null
		printf '%s\n' "$pw" >"$ADMINPW"
		chmod 600 "$ADMINPW"
	fi
	local n
	for n in "${NODES[@]}"; do # any node that answers
		curl -fsS -H 'Content-Type: application/json' \
			-d "{\"email\":\"$ADMIN\",\"password\":\"$(cat "$ADMINPW")\"}" \
			"http://$(ip_of "$n"):$API_PORT/api/auth/login" 2>/dev/null |
			sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p' | grep . && return 0
	done
	echo "cluster: no node answers" >&2
	return 1
}

case "${1:-}" in
up)
	cd "$ROOT"
	make -s pg-run build >/dev/null
	"$ROOT/scripts/node.sh" stop >/dev/null
	mkdir -p "$DIR"
	[ -f "$DIR/secret" ] || head -c 32 /dev/urandom | base64 >"$DIR/secret"
	if [ ! -f "$CERTS/n3.pem" ]; then
		"$ROOT/bin/sostenuto" cluster certs --dir "$CERTS" --nodes n1=127.0.0.1,n2=127.0.0.2,n3=127.0.0.3 >/dev/null
	fi
	for n in "${NODES[@]}"; do launch "$n"; done
	for n in "${NODES[@]}"; do await "$n"; done
	echo "cluster: up; scripts/cluster.sh status"
	;;
status)
	tok=$(token)
	for n in "${NODES[@]}"; do
		echo "$n: $(curl -sS -H "Authorization: Bearer $tok" "http://$(ip_of "$n"):$API_PORT/api/cluster/status" 2>&1 || echo down)"
	done
	;;
kill)
	n=${2:?node}; alive "$n" && kill -KILL "$(cat "$DIR/$n.pid")" && rm -f "$DIR/$n.pid" && echo "$n: killed" ;;
start) launch "${2:?node}" && await "$2" ;;
down) for n in "${NODES[@]}"; do stop_node "$n"; done ;;
destroy)
	for n in "${NODES[@]}"; do stop_node "$n"; done
	rm -rf "$DIR"
	echo "cluster: Raft state deleted"
	;;
*) echo "usage: $0 up | status | kill NODE | start NODE | down | destroy" >&2; exit 2 ;;
esac
