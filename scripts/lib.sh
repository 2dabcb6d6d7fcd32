# shellcheck shell=bash
# Shared helpers for the paygate dev and test scripts. Source it, do not run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Layout:
#   $PAYGATE_ROOT   the repository root.
#   $PAYGATE_STATE  $PAYGATE_ROOT/.local (git-ignored) unless set: run
#                   state, logs, the gateway binary.
#   $PAYGATE_CACHE  ${XDG_CACHE_HOME:-$HOME/.cache}/paygate, outside the repo:
#                   dev tool binaries keyed by version, so warm runs build
#                   nothing.
#                     bin/mailpit-<version>        (version from tools/go.mod)
#                     bin/devkafka-<hash>          (hash of tools/go.mod, go.sum,
#                                                   tools/cmd/devkafka sources, go version)
#                     bin/staticcheck-<version>-<go version>  (pinned below)
#                     bin/goimports-<version>-<go version>

set -euo pipefail

PAYGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
PAYGATE_STATE="${PAYGATE_STATE:-$PAYGATE_ROOT/.local}"
PAYGATE_CACHE="${PAYGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paygate}"
PAYGATE_TOOLS="$PAYGATE_ROOT/tools"

# ---------------------------------------------------------------------------
# Logging.

# The script's own stdout/stderr. Bash runs a signal trap while the
# redirections of the interrupted command are still in place (for example
# `initdb >log`), so traps call restore_output first to be seen.
exec {PAYGATE_OUT_FD}>&1 {PAYGATE_ERR_FD}>&2
restore_output() { exec 1>&"$PAYGATE_OUT_FD" 2>&"$PAYGATE_ERR_FD"; }

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
	printf '==> ERROR: %s\n' "$*" >&2
	exit 1
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# sha256_of prints the sha256 of stdin.
sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum | cut -d' ' -f1
	else
		shasum -a 256 | cut -d' ' -f1
	fi
}

# ---------------------------------------------------------------------------
# Ports.

# port_in_use PORT: true when something accepts TCP connections on
# 127.0.0.1:PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: prints a TCP port on 127.0.0.1 that is free right now.
free_port() {
	local port
	if command -v python3 >/dev/null 2>&1 &&
		port="$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' 2>/dev/null)" && [[ -n "$port" ]]; then
		echo "$port"
		return 0
	fi
	local i
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + RANDOM % 40000))
		if ! port_in_use "$port"; then
			echo "$port"
			return 0
		fi
	done
	die "could not find a free TCP port on 127.0.0.1"
}

# port_or_free PORT: prints PORT when it is free, else a free port.
port_or_free() {
	if port_in_use "$1"; then
		free_port
	else
		echo "$1"
	fi
}

# wait_port PORT TIMEOUT_SECONDS [PID]: waits until 127.0.0.1:PORT accepts
# connections; fails early when PID (if given) exits.
wait_port() {
	local port="$1" timeout="$2" pid="${3:-}" i
	for ((i = 0; i < timeout * 10; i++)); do
		if port_in_use "$port"; then
			return 0
		fi
		if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	return 1
}

# ---------------------------------------------------------------------------
# Background processes (each in its own process group, so a terminal Ctrl-C
# reaches only the script, which then stops them in order).

# stop_pid NAME PID [TIMEOUT_SECONDS]: SIGTERMs PID's process group, waits,
# then SIGKILLs whatever is left.
stop_pid() {
	local name="$1" pid="$2" timeout="${3:-15}" i
	[[ -n "$pid" ]] || return 0
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	log "stopping $name (pid $pid)"
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < timeout * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name did not stop in ${timeout}s, killing it"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
	# Children of the group that outlived the leader.
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# kill_stale_pidfile NAME PIDFILE MATCH: stops a process left behind by a
# previous run that crashed or was killed, if PIDFILE names a live process
# whose command line contains MATCH (guards against reused pids).
kill_stale_pidfile() {
	local name="$1" pidfile="$2" match="$3" pid cmdline
	[[ -f "$pidfile" ]] || return 0
	pid="$(cat "$pidfile" 2>/dev/null || true)"
	rm -f "$pidfile"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
	if [[ -n "$match" && "$cmdline" == *"$match"* ]]; then
		warn "stopping stale $name from a previous run (pid $pid)"
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.1
		done
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
}

# ---------------------------------------------------------------------------
# PostgreSQL.

PG_BIN=""

# ensure_postgres: sets PG_BIN to the newest PostgreSQL server bin dir,
# installing the Debian package when no server is found. When running as
# root it also makes sure the unprivileged "postgres" user exists, because
# the server refuses to run as root.
ensure_postgres() {
	PG_BIN="$(find_pg_bin || true)"
	if [[ -z "$PG_BIN" ]]; then
		is_root || die "PostgreSQL server binaries (initdb) not found; install the 'postgresql' package"
		log "installing PostgreSQL (apt-get install postgresql)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq postgresql >&2
		PG_BIN="$(find_pg_bin || true)"
		[[ -n "$PG_BIN" ]] || die "PostgreSQL installed but initdb still not found"
	fi
	if is_root && ! id -u postgres >/dev/null 2>&1; then
		log "creating system user postgres"
		useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres ||
			adduser --system --group --home /var/lib/postgresql postgres
	fi
}

# ensure_apt_tool CMD PACKAGE: installs PACKAGE from Debian when CMD is
# not on the PATH (tests need a few real tools: prometheus and promtool,
# chromium).
ensure_apt_tool() {
	local cmd="$1" pkg="$2"
	command -v "$cmd" >/dev/null 2>&1 && return 0
	is_root || die "$cmd not found; install the '$pkg' package"
	log "installing $pkg (apt-get install $pkg)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq "$pkg" >&2
	command -v "$cmd" >/dev/null 2>&1 || die "$pkg installed but $cmd still not found"
}

# ---------------------------------------------------------------------------
# API docs: the Redoc bundle that GET /docs serves, embedded from api/redoc/.

# build_docs: runs `npm ci` in web/docs (Redoc, pinned by its
# package-lock.json) and copies the standalone bundle into api/redoc/ for
# go:embed, unless the copy there came from the same lockfile. The bundle
# is git-ignored; without it the binary builds but /docs answers 503.
# Returns non-zero (without exiting) when it fails.
build_docs() {
	local web="$PAYGATE_ROOT/web/docs" dir="$PAYGATE_ROOT/api/redoc"
	local dst="$dir/redoc.standalone.js" stamp="$dir/.package-lock.sha256" want
	want="$(sha256_of <"$web/package-lock.json")"
	if [[ -s "$dst" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
		return 0
	fi
	ensure_apt_tool npm npm
	log "building the API docs bundle (npm ci in web/docs)"
	(cd "$web" && npm ci --no-audit --no-fund --loglevel=error >&2) || {
		warn "npm ci in web/docs failed"
		return 1
	}
	local src="$web/node_modules/redoc/bundles/redoc.standalone.js"
	[[ -s "$src" ]] || {
		warn "$src is missing after npm ci"
		return 1
	}
	cp "$src" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst" && echo "$want" >"$stamp"
}

# find_pg_bin: prints a directory that holds initdb, pg_ctl and postgres.
find_pg_bin() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d="$(pg_config --bindir 2>/dev/null || true)"
		if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
			echo "$d"
			return 0
		fi
	fi
	d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
	if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
		echo "$d"
		return 0
	fi
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		d="$(dirname "$(readlink -f "$(command -v initdb)")")"
		echo "$d"
		return 0
	fi
	return 1
}

# pg_as CMD...: runs CMD as the postgres user when we are root, else as is.
pg_as() {
	if is_root; then
		if command -v runuser >/dev/null 2>&1; then
			runuser -u postgres -- "$@"
		else
			setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
		fi
	else
		"$@"
	fi
}

# pg_running DIR: true when a server is running on the cluster in DIR.
pg_running() {
	[[ -f "$1/postmaster.pid" ]] && pg_as "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# pg_start DIR PORT: initializes (when needed) and starts a throwaway
# cluster in DIR, listening on 127.0.0.1:PORT only, tuned for speed over
# durability. A server still running in DIR from an earlier run is stopped
# first; stale pid files and half-initialized dirs are cleaned up.
pg_start() {
	local dir="$1" port="$2"
	[[ -n "$PG_BIN" ]] || ensure_postgres
	mkdir -p "$(dirname "$dir")"
	dir="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")"

	if is_root; then
		# The postgres user must be able to reach DIR.
		local parent
		parent="$(dirname "$dir")"
		if ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
			die "user postgres cannot access $parent (check the permissions of its parent directories)"
		fi
	fi

	if [[ -f "$dir/postmaster.pid" ]]; then
		if pg_running "$dir"; then
			warn "a server from an earlier run is still running in $dir, stopping it"
			pg_as "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null 2>&1 || true
		fi
		rm -f "$dir/postmaster.pid"
	fi

	# Re-initialize when the dir is missing, half-initialized (crashed
	# initdb) or from another major version.
	local want_version
	want_version="$("$PG_BIN/pg_ctl" --version | awk '{ print $3 }' | cut -d. -f1)"
	if [[ ! -f "$dir/PG_VERSION" ]] || [[ "$(cat "$dir/PG_VERSION")" != "$want_version" ]] ||
		[[ ! -f "$dir/postgresql.conf" ]]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		chmod 700 "$dir"
		if is_root; then chown postgres: "$dir"; fi
		log "initializing PostgreSQL $want_version cluster in $dir"
		pg_as "$PG_BIN/initdb" -D "$dir" -A trust -U postgres --no-sync -E UTF8 --locale=C >"$dir.initdb.log" 2>&1 ||
			{
				cat "$dir.initdb.log" >&2
				die "initdb failed"
			}
		rm -f "$dir.initdb.log"
		printf "\ninclude_if_exists = 'paygate.conf'\n" >>"$dir/postgresql.conf"
	fi
	if is_root; then chown -R postgres: "$dir"; fi

	# Unix sockets live in DIR; skip them when the path would be too long
	# for sun_path (TCP on 127.0.0.1 is what the scripts use anyway).
	local sockdir="$dir"
	if ((${#dir} + 20 > 100)); then sockdir=""; fi
	cat >"$dir/paygate.conf" <<EOF
# Written by scripts/lib.sh on every start; local dev/test settings only.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 400
shared_buffers = 256MB
logging_collector = off
log_min_messages = warning
EOF
	if is_root; then chown postgres: "$dir/paygate.conf"; fi

	log "starting PostgreSQL on 127.0.0.1:$port ($dir)"
	if ! pg_as "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/postgres.log" -w -t 60 start >/dev/null; then
		tail -n 30 "$dir/postgres.log" >&2 || true
		die "PostgreSQL failed to start"
	fi
}

# pg_stop DIR: stops the server running on the cluster in DIR, if any.
pg_stop() {
	local dir="$1"
	[[ -d "$dir" ]] || return 0
	[[ -n "$PG_BIN" ]] || PG_BIN="$(find_pg_bin || true)"
	[[ -n "$PG_BIN" ]] || return 0
	if pg_running "$dir"; then
		log "stopping PostgreSQL ($dir)"
		pg_as "$PG_BIN/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null ||
			pg_as "$PG_BIN/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null || true
	fi
}

# pg_create_db PORT NAME: creates database NAME unless it exists.
pg_create_db() {
	local port="$1" name="$2"
	if [[ "$("$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
		"SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]]; then
		log "creating database $name"
		"$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE \"$name\"" >/dev/null
	fi
}

# ---------------------------------------------------------------------------
# Dev tools, built from the tools/ module into $PAYGATE_CACHE/bin.

DEVKAFKA_BIN=""
MAILPIT_BIN=""

# tools_module_version MODULE: prints MODULE's version from tools/go.mod.
tools_module_version() {
	awk -v m="$1" '($1 == m && $2 ~ /^v/) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' \
		"$PAYGATE_TOOLS/go.mod"
}

# install_atomically SRC DST: moves a freshly built SRC to DST.
install_atomically() {
	chmod 755 "$1"
	mv -f "$1" "$2"
}

# build_devkafka: sets DEVKAFKA_BIN, building it unless cached.
build_devkafka() {
	local key
	key="$(
		cd "$PAYGATE_TOOLS"
		{
			go env GOVERSION
			cat go.mod go.sum
			find cmd/devkafka -type f -name '*.go' | LC_ALL=C sort | while read -r f; do
				echo "$f"
				cat "$f"
			done
		} | sha256_of | cut -c1-16
	)"
	DEVKAFKA_BIN="$PAYGATE_CACHE/bin/devkafka-$key"
	if [[ ! -x "$DEVKAFKA_BIN" ]]; then
		log "building devkafka -> $DEVKAFKA_BIN"
		mkdir -p "$PAYGATE_CACHE/bin"
		local tmp="$DEVKAFKA_BIN.tmp.$$"
		(cd "$PAYGATE_TOOLS" && go build -trimpath -o "$tmp" ./cmd/devkafka) || {
			rm -f "$tmp"
			die "building devkafka failed"
		}
		install_atomically "$tmp" "$DEVKAFKA_BIN"
		# Drop builds for older sources.
		find "$PAYGATE_CACHE/bin" -maxdepth 1 -name 'devkafka-*' ! -name "devkafka-$key" ! -name '*.tmp.*' -delete 2>/dev/null || true
	fi
}

# build_mailpit: sets MAILPIT_BIN, building it unless cached. The module
# build serves the HTTP API but not the web UI assets (those need an npm
# build that is not part of the Go module).
build_mailpit() {
	local version
	version="$(tools_module_version github.com/axllent/mailpit)"
	[[ -n "$version" ]] || die "github.com/axllent/mailpit not found in tools/go.mod"
	MAILPIT_BIN="$PAYGATE_CACHE/bin/mailpit-$version"
	if [[ ! -x "$MAILPIT_BIN" ]]; then
		log "building mailpit $version -> $MAILPIT_BIN (takes a minute the first time)"
		mkdir -p "$PAYGATE_CACHE/bin"
		local tmp="$MAILPIT_BIN.tmp.$$"
		(cd "$PAYGATE_TOOLS" && go build -trimpath \
			-ldflags "-s -w -X github.com/axllent/mailpit/config.Version=$version" \
			-o "$tmp" github.com/axllent/mailpit) || {
			rm -f "$tmp"
			die "building mailpit failed"
		}
		install_atomically "$tmp" "$MAILPIT_BIN"
	fi
}

# Go analysis tools that make test runs, pinned here: a new version is a
# one-line change, and the cache keeps one build per version and Go
# release.
STATICCHECK_VERSION="v0.8.2" # staticcheck 2026.2.2
GOIMPORTS_VERSION="v0.52.0"  # golang.org/x/tools
STATICCHECK_BIN=""
GOIMPORTS_BIN=""

# go_install_cached NAME PACKAGE VERSION: builds PACKAGE@VERSION with
# `go install` into $PAYGATE_CACHE/bin/NAME-VERSION-GOVERSION unless that
# build exists (an analyser must be built with the Go release whose code
# it reads), drops NAME's other builds, and prints the path. Returns
# non-zero (without exiting) when the build fails.
go_install_cached() {
	local name="$1" pkg="$2" version="$3" bin tmp
	bin="$PAYGATE_CACHE/bin/$name-$version-$(go env GOVERSION)"
	if [[ ! -x "$bin" ]]; then
		log "building $name $version -> $bin"
		mkdir -p "$PAYGATE_CACHE/bin"
		tmp="$(mktemp -d "$PAYGATE_CACHE/bin/.$name.XXXXXX")"
		# Outside the module: the tool's own go.mod decides its dependencies.
		if ! (cd "$tmp" && GOBIN="$tmp" GOFLAGS= go install "$pkg@$version" >&2); then
			rm -rf "$tmp"
			warn "building $name $version failed"
			return 1
		fi
		install_atomically "$tmp/${pkg##*/}" "$bin"
		rm -rf "$tmp"
		find "$PAYGATE_CACHE/bin" -maxdepth 1 -name "$name-*" ! -name "$name-$version-*" -delete 2>/dev/null || true
	fi
	echo "$bin"
}

# build_staticcheck: sets STATICCHECK_BIN, building it unless cached.
build_staticcheck() {
	STATICCHECK_BIN="$(go_install_cached staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION")"
}

# build_goimports: sets GOIMPORTS_BIN, building it unless cached.
build_goimports() {
	GOIMPORTS_BIN="$(go_install_cached goimports golang.org/x/tools/cmd/goimports "$GOIMPORTS_VERSION")"
}

# build_tools: builds every dev tool into the cache.
# build_otelcol: sets OTELCOL_BIN, building the collector validator from
# tools/otelcol unless a build of the same sources is cached. A cold build
# takes several minutes on two cores; a warm run none.
OTELCOL_BIN=""
build_otelcol() {
	local key
	key="$({ go version; cat "$PAYGATE_TOOLS/otelcol/go.mod" "$PAYGATE_TOOLS/otelcol/go.sum" "$PAYGATE_TOOLS/otelcol/"*.go; } | sha256sum | cut -c1-16)"
	OTELCOL_BIN="$PAYGATE_CACHE/bin/otelcol-paygate-$key"
	if [[ ! -x "$OTELCOL_BIN" ]]; then
		log "building the collector validator -> $OTELCOL_BIN (once; several minutes)"
		mkdir -p "$PAYGATE_CACHE/bin"
		(cd "$PAYGATE_TOOLS/otelcol" && go build -trimpath -ldflags="-s -w" -o "$OTELCOL_BIN.tmp" .) || die "building otelcol-paygate failed"
		mv "$OTELCOL_BIN.tmp" "$OTELCOL_BIN"
	fi
}

# build_jaeger: sets JAEGER_BIN, building Jaeger v2 (cmd/jaeger, the
# OpenTelemetry-collector-based binary) from its Go module (tools/jaeger)
# unless a build of the same module versions is cached, and drops older
# Jaeger builds (the retired v1 all-in-one among them). The first build
# takes several minutes on two cores. make run starts it with
# k8s/jaeger/config.yaml, the cluster's configuration.
JAEGER_BIN=""
build_jaeger() {
	local key
	key="$({ go version; cat "$PAYGATE_TOOLS/jaeger/go.mod" "$PAYGATE_TOOLS/jaeger/go.sum"; } | sha256sum | cut -c1-16)"
	JAEGER_BIN="$PAYGATE_CACHE/bin/jaeger-v2-$key"
	if [[ ! -x "$JAEGER_BIN" ]]; then
		log "building Jaeger v2 -> $JAEGER_BIN (once; slow)"
		mkdir -p "$PAYGATE_CACHE/bin"
		(cd "$PAYGATE_TOOLS/jaeger" && go build -trimpath -ldflags="-s -w" -o "$JAEGER_BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) ||
			die "building Jaeger failed"
		install_atomically "$JAEGER_BIN.tmp" "$JAEGER_BIN"
		find "$PAYGATE_CACHE/bin" -maxdepth 1 -name 'jaeger-*' ! -name "${JAEGER_BIN##*/}" -delete 2>/dev/null || true
	fi
}

build_tools() {
	build_devkafka
	build_mailpit
	log "devkafka: $DEVKAFKA_BIN"
	log "mailpit:  $MAILPIT_BIN"
}
