#!/usr/bin/env bash
# Installs what Sostenuto needs on Debian 12 and is missing: PostgreSQL 15
# (server, client, server headers) and poppler-utils from Debian's packages
# and pgvector 0.8.0 built from Debian 13's source package (Debian 12 does
# not package it).
# Idempotent: does nothing when everything is present.
set -euo pipefail

PGVER=15
PGBIN=/usr/lib/postgresql/$PGVER/bin
PGVECTOR_VERSION=0.8.0

log() { printf 'deps: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null 2>&1; then sudo "$@"
	else log "need root to run: $*"; exit 1
	fi
}

# `deps.sh test-tools`: what only the tests use: redis-server (the shared
# cache) and chromium (the browser test of the answer stream).
if [ "${1:-}" = test-tools ]; then
	tools=()
	command -v redis-server >/dev/null 2>&1 || tools+=(redis-server)
	command -v chromium >/dev/null 2>&1 || tools+=(chromium)
	[ ${#tools[@]} -eq 0 ] && exit 0
	log "installing ${tools[*]} (for the tests)"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
	exit 0
fi

need_pkgs=()
[ -x "$PGBIN/postgres" ] || need_pkgs+=("postgresql-$PGVER")
[ -x "$PGBIN/psql" ] || need_pkgs+=("postgresql-client-$PGVER")
[ -e "/usr/include/postgresql/$PGVER/server/postgres.h" ] || need_pkgs+=("postgresql-server-dev-$PGVER")
command -v gcc >/dev/null 2>&1 || need_pkgs+=(build-essential)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
# pdftoppm and pdfinfo draw project pages as images (server/pdf/render*.go).
command -v pdftoppm >/dev/null 2>&1 || need_pkgs+=(poppler-utils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	log "installing ${need_pkgs[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# Debian starts a default cluster on install; we never use it.
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

installed_pgvector() {
	local control=/usr/share/postgresql/$PGVER/extension/vector.control
	[ -f "$control" ] && grep -q "default_version = '$PGVECTOR_VERSION'" "$control" &&
		[ -f "/usr/lib/postgresql/$PGVER/lib/vector.so" ]
}

if ! installed_pgvector; then
	log "building pgvector $PGVECTOR_VERSION from Debian's source package (trixie)"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	# A private source list so the system's apt configuration is left untouched.
	cat >"$work/trixie-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	mkdir -p "$work/lists/partial"
	aptopts=(-o "Dir::Etc::sourcelist=$work/trixie-src.sources" -o "Dir::Etc::sourceparts=-"
		-o "Dir::State::lists=$work/lists" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
	as_root apt-get "${aptopts[@]}" update -qq
	(cd "$work" && as_root apt-get "${aptopts[@]}" source --download-only -qq "pgvector=$PGVECTOR_VERSION-1" >/dev/null 2>&1 ||
		as_root apt-get "${aptopts[@]}" source --download-only -qq pgvector >/dev/null)
	tarball=$(ls "$work"/pgvector_"$PGVECTOR_VERSION".orig.tar.* | head -n1)
	tar -xf "$tarball" -C "$work"
	src="$work/pgvector-$PGVECTOR_VERSION"
	make -s -C "$src" PG_CONFIG="$PGBIN/pg_config" >/dev/null
	as_root make -s -C "$src" PG_CONFIG="$PGBIN/pg_config" install >/dev/null
	installed_pgvector || { log "pgvector install did not take"; exit 1; }
	log "pgvector $PGVECTOR_VERSION installed"
fi
