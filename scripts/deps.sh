#!/usr/bin/env bash
# Installs what Sostenuto needs on Debian 12 and is missing: PostgreSQL 15
# (server, client, server headers) from Debian's packages, poppler-utils and
# Tesseract with English, German, French, Spanish and Italian language data
# (OCR of scanned PDFs, docs/INGESTION.md), and pgvector 0.8.0 built from
# Debian 13's source package (Debian 12 does not package it).
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

# no_start_install installs packages with service starts refused, through
# a temporary /usr/sbin/policy-rc.d (restored afterwards if one existed).
no_start_install() {
	local prc=/usr/sbin/policy-rc.d saved=""
	if [ -e "$prc" ]; then saved=$(mktemp); as_root cp -p "$prc" "$saved"; fi
	printf '#!/bin/sh\nexit 101\n' | as_root tee "$prc" >/dev/null
	as_root chmod 755 "$prc"
	local rc=0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
	if [ -n "$saved" ]; then as_root cp -p "$saved" "$prc"; rm -f "$saved"; else as_root rm -f "$prc"; fi
	return $rc
}

# stop_services stops and disables the services the packages would run at
# boot (where systemd runs), so nothing is left listening.
stop_services() {
	local pkg svc
	for pkg in "$@"; do
		case $pkg in
		prometheus) svc=prometheus ;;
		redis-server) svc=redis-server ;;
		*) continue ;;
		esac
		if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
			as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
		elif [ -x "/etc/init.d/$svc" ]; then
			as_root "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
		fi
	done
}

# `deps.sh test-tools`: what only the tests use: redis-server (the shared
# cache), chromium (the browser test of the answer stream) and prometheus
# with promtool (the alert rules' checks and the Prometheus test).
if [ "${1:-}" = test-tools ]; then
	tools=()
	command -v redis-server >/dev/null 2>&1 || tools+=(redis-server)
	command -v chromium >/dev/null 2>&1 || tools+=(chromium)
	{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || tools+=(prometheus)
	[ ${#tools[@]} -eq 0 ] && exit 0
	log "installing ${tools[*]} (for the tests)"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# The packages' services must not start (the tests run their own
	# processes; a system Prometheus would hold :9090): policy-rc.d
	# answers 101 ("not allowed") to every service start during the install.
	no_start_install "${tools[@]}"
	stop_services "${tools[@]}"
	exit 0
fi

# `deps.sh worker`: the Cloudflare Worker's tools (edge/worker): Node and
# npm from Debian's packages when missing, then the packages pinned in
# edge/worker/package-lock.json from npm — Node 22 itself (npm's `node`
# package: wrangler needs Node >= 22.12, Debian 12 has 18), workerd,
# miniflare and wrangler. Quick when the installed tree matches the lock.
if [ "${1:-}" = worker ]; then
	ROOT=$(cd "$(dirname "$0")/.." && pwd)
	W="$ROOT/edge/worker"
	if ! command -v npm >/dev/null 2>&1; then
		log "installing nodejs and npm (for the Worker's tools)"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
	fi
	stamp="$W/node_modules/.package-lock.json"
	if [ -x "$W/node_modules/.bin/node" ] && [ -d "$W/node_modules/miniflare" ] && [ -f "$stamp" ] && [ "$stamp" -nt "$W/package-lock.json" ] &&
		[ "$("$W/node_modules/.bin/node" --version)" = "v22.23.3" ]; then
		exit 0
	fi
	log "installing the Worker's npm packages (edge/worker/package-lock.json)"
	(cd "$W" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	"$W/node_modules/.bin/node" --version | grep -qx v22.23.3 || { log "Node 22.23.3 from npm did not install"; exit 1; }
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
command -v tesseract >/dev/null 2>&1 || need_pkgs+=(tesseract-ocr)
for lang in eng deu fra spa ita; do
	[ -f "/usr/share/tesseract-ocr/5/tessdata/$lang.traineddata" ] || need_pkgs+=("tesseract-ocr-$lang")
done
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
