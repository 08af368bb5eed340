#!/usr/bin/env bash
# Manages a project-local PostgreSQL 15 cluster for Sostenuto.
#
#   scripts/pg.sh up NAME PORT   create (once) and start the cluster .data/NAME/pg,
#                                with wal_level=logical, the database and role
#                                "sostenuto" and pgvector; writes the connection
#                                URL to .data/NAME/database_url
#   scripts/pg.sh down NAME      stop it (fast shutdown)
#   scripts/pg.sh stop-now NAME  stop it immediately (for tests of outages)
#   scripts/pg.sh start NAME     start it again after a stop
#   scripts/pg.sh destroy NAME   stop it and delete its data
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the
# "postgres" system user. Its socket directory is private to that user, so
# local socket connections use trust; TCP (127.0.0.1 only) uses SCRAM.
# The roles sostenuto_app (the request path, under Row Level Security) and
# sostenuto_worker (background jobs) are created here and granted to sostenuto.
# NAME "test" gets settings for speed (fsync off) and a CREATEDB role so tests
# can clone databases from a migrated template.
set -euo pipefail

PGBIN=/usr/lib/postgresql/15/bin
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}; name=${2:-}
[ -n "$cmd" ] && [ -n "$name" ] || { echo "usage: $0 up|down|start|stop-now NAME [PORT]" >&2; exit 2; }
case "$name" in *[!a-z0-9_-]*) echo "pg: bad cluster name $name" >&2; exit 2;; esac

state="$ROOT/.data/$name"
mkdir -p "$state"
chmod 711 "$state"  # traversable by the cluster user, not listable

log() { printf 'pg[%s]: %s\n' "$name" "$*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
	runas=postgres
	as_pg() { runuser -u postgres -- "$@"; }
else
	runas=$(id -un)
	as_pg() { "$@"; }
fi

# The cluster lives in .data/NAME/pg unless the cluster user cannot reach it
# (a checkout under /root, say); then it lives under /var/tmp and
# .data/NAME/pg is a symlink to it.
pgdata_for() {
	local want="$state/pg"
	if [ -L "$want" ] || [ -d "$want" ]; then echo "$want"; return; fi
	if [ "$runas" = postgres ] && ! runuser -u postgres -- test -x "$state" 2>/dev/null; then
		local hash alt
		hash=$(printf '%s' "$state" | md5sum | cut -c1-10)
		alt="/var/tmp/sostenuto-pg-$hash"
		mkdir -p "$alt"
		chown postgres: "$alt"
		chmod 700 "$alt"
		ln -sfn "$alt" "$want"
	fi
	echo "$want"
}
PGDATA=$(pgdata_for)
real_pgdata=$(readlink -f "$PGDATA" 2>/dev/null || echo "$PGDATA")
hash=$(printf '%s' "$state" | md5sum | cut -c1-10)
SOCK="/tmp/sostenuto-pg-$hash"

ensure_sockdir() {
	mkdir -p "$SOCK"
	[ "$runas" = postgres ] && chown postgres: "$SOCK"
	chmod 700 "$SOCK"
}

running() { as_pg "$PGBIN/pg_ctl" -D "$real_pgdata" status >/dev/null 2>&1; }

psql_su() { as_pg env PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }

start() {
	ensure_sockdir
	if running; then return; fi
	if ! as_pg "$PGBIN/pg_ctl" -D "$real_pgdata" -l "$real_pgdata/server.log" -w -t 60 start >/dev/null; then
		log "failed to start; the end of $real_pgdata/server.log:"
		tail -n 15 "$real_pgdata/server.log" >&2 || true
		exit 1
	fi
	log "started on 127.0.0.1:$PORT"
}

init_cluster() {
	[ -f "$real_pgdata/PG_VERSION" ] && return
	mkdir -p "$real_pgdata"
	[ "$runas" = postgres ] && chown postgres: "$real_pgdata"
	chmod 700 "$real_pgdata"
	log "initdb in $real_pgdata"
	as_pg "$PGBIN/initdb" -D "$real_pgdata" -U postgres -E UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	local conf="$real_pgdata/postgresql.conf"
	{
		echo "# Sostenuto ($name)"
		echo "port = $PORT"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$SOCK'"
		echo "wal_level = logical"
		echo "max_replication_slots = 20"
		echo "max_wal_senders = 20"
		echo "password_encryption = 'scram-sha-256'"
		if [ "$name" = test ]; then
			echo "max_connections = 300"
			echo "shared_buffers = 128MB"
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
		else
			echo "max_connections = 100"
			echo "shared_buffers = 512MB"
		fi
	} | as_pg tee -a "$conf" >/dev/null
	# Local sockets: trust (the socket directory is private to the cluster
	# user). TCP on loopback: SCRAM passwords, replication included.
	as_pg tee "$real_pgdata/pg_hba.conf" >/dev/null <<HBA
local   all             all                     trust
local   replication     all                     trust
host    all             all     127.0.0.1/32    scram-sha-256
host    replication     all     127.0.0.1/32    scram-sha-256
HBA
}

provision() {
	local urlfile="$state/database_url" pw
	if [ -s "$urlfile" ]; then
		pw=$(sed -E 's|^postgres://sostenuto:([^@]*)@.*|\1|' "$urlfile")
	else
		pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	fi
	local extra=""
	[ "$name" = test ] && extra="CREATEDB"
	psql_su -d postgres <<SQL
SELECT 'CREATE ROLE sostenuto' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sostenuto') \gexec
ALTER ROLE sostenuto LOGIN REPLICATION $extra PASSWORD '$pw';
SELECT 'CREATE ROLE sostenuto_app NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sostenuto_app') \gexec
SELECT 'CREATE ROLE sostenuto_worker NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sostenuto_worker') \gexec
GRANT sostenuto_app, sostenuto_worker TO sostenuto;
SELECT 'CREATE DATABASE sostenuto OWNER sostenuto' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sostenuto') \gexec
SQL
	# pgvector is not a trusted extension: the superuser creates it, in the
	# database and (test cluster) in template1 so every test database has it.
	psql_su -d sostenuto -c 'CREATE EXTENSION IF NOT EXISTS vector'
	if [ "$name" = test ]; then
		psql_su -d template1 -c 'CREATE EXTENSION IF NOT EXISTS vector'
		# Test databases live for seconds: no autovacuum workers in them
		# (they would also block DROP DATABASE ... WITH (FORCE)).
		psql_su -d postgres -c 'ALTER SYSTEM SET autovacuum = off' -c 'SELECT pg_reload_conf()' >/dev/null
	fi
	umask 077
	printf 'postgres://sostenuto:%s@127.0.0.1:%s/sostenuto?sslmode=disable\n' "$pw" "$PORT" >"$urlfile.tmp"
	mv "$urlfile.tmp" "$urlfile"
}

case "$cmd" in
up)
	PORT=${3:?port}
	init_cluster
	conf_port=$(sed -nE 's/^port = ([0-9]+)/\1/p' "$real_pgdata/postgresql.conf" | tail -n1)
	if [ "$conf_port" != "$PORT" ]; then
		log "cluster exists on port $conf_port; keeping it (make clean to start over)"
		PORT=$conf_port
	fi
	start
	provision
	;;
start)
	PORT=$(sed -nE 's/^port = ([0-9]+)/\1/p' "$real_pgdata/postgresql.conf" | tail -n1)
	start
	;;
down | stop-now)
	if [ -f "$real_pgdata/PG_VERSION" ] && running; then
		mode=fast; [ "$cmd" = stop-now ] && mode=immediate
		as_pg "$PGBIN/pg_ctl" -D "$real_pgdata" -m "$mode" -w stop >/dev/null
		log "stopped"
	fi
	;;
destroy)
	if [ -f "$real_pgdata/PG_VERSION" ] && running; then
		as_pg "$PGBIN/pg_ctl" -D "$real_pgdata" -m immediate -w stop >/dev/null
	fi
	if [ -L "$PGDATA" ]; then rm -rf "$real_pgdata"; fi
	rm -rf "$PGDATA" "$SOCK"
	log "removed"
	;;
*) echo "pg: unknown command $cmd" >&2; exit 2 ;;
esac
