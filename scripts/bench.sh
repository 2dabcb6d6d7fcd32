#!/usr/bin/env bash
# `make bench`: paygate's transfers over HTTP next to pgbench's TPC-B-like
# transaction on the same throwaway PostgreSQL, in one run:
#
#   modes      durable (fsync, synchronous_commit, full_page_writes on: the
#              headline, production's setting) and cpu (all three off);
#              set with ALTER SYSTEM, checked with SHOW, printed
#   scenarios  uniform (transfers among BENCH_USERS users), hot-source
#              (every transfer pays out of one wallet), hot-sink (every
#              transfer pays into one wallet)
#   clients    each count of BENCH_CLIENTS, closed loop, next to pgbench
#              -c N -j 2 on the same server (scale = the largest count)
#   open loop  at half the closed-loop peak of the lowest client count,
#              latency percentiles from the scheduled send time
#   also       the gateway's max RSS per cell, cores used by the gateway,
#              PostgreSQL and the load generator, start-to-ready time on
#              a migrated database, a CPU profile of the gateway (pprof on
#              its operations listener), pg_stat_statements and
#              pg_stat_activity sampled every 100 ms (what each busy session
#              runs and waits on) during the durable uniform cell with the
#              lowest client count
#
# It prints the tables and writes them into docs/performance.md as the
# section BENCH_LABEL, keeping the other sections (the "before" baseline).
# Every part that fails (the gateway exits or answers other than 201, the
# sandbox does not pay, pgbench fails) stops the run with a non-zero exit.
#
# The gateway runs as in production (PAYGATE_ENV=prod) with its
# neighbours started here: devkafka, the payment sandbox (`paygate
# sandbox -auto-pay`, from the same binary, with its own key and token) and
# an SMTP sink (`paybench smtp-sink`) that discards mail. Users are funded
# by top-ups the sandbox pays; funding is never timed.
#
#   BENCH_DURATION    seconds of each measured window (default 12)
#   BENCH_WARMUP      seconds of unmeasured load before it (default 2)
#   BENCH_CLIENTS     client counts (default "16 64")
#   BENCH_SCENARIOS   default "uniform hot-source hot-sink"
#   BENCH_MODES       default "durable cpu"
#   BENCH_OPEN_MODES  modes that get the open-loop runs (default "durable";
#                     "" for none)
#   BENCH_USERS       users transfers run between (default 32)
#   BENCH_MAX_RATE    tx/s the payers are funded for (default 3000)
#   BENCH_PROFILE     "mode scenario clients" of the profiled cell (default
#                     "durable uniform <lowest client count>"; "" for none;
#                     "durable uniform open" for that open-loop cell)
#   BENCH_RATE_OF_PEAK  the open loop's rate as a fraction of the peak
#                     (default 0.5, the issue's goal)
#   BENCH_OPEN_RATE   a fixed open-loop rate in tx/s instead, to compare
#                     settings at the same load
#   BENCH_PROFILE_SECONDS  CPU profile length (default: the window less 1 s,
#                     at most 15)
#   BENCH_LABEL       section of the document (default latest)
#   BENCH_DOC         document written (default docs/performance.md; ""
#                     prints only)
#   BENCH_PGBENCH     pgbench binary (default the server's)
#   BENCH_KEEP=1      keep the run's directory (logs, results) at the end
#   BENCH_GATEWAY_ENV extra NAME=value settings of the gateway, for tuning
#                     experiments (e.g. "PAYGATE_BATCH_WORKERS=4", "GOGC=200"); they are
#                     listed in the document's settings
#
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_T0=$SECONDS
LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"

DURATION="${BENCH_DURATION:-12}"
WARMUP="${BENCH_WARMUP:-2}"
read -r -a CLIENTS <<<"${BENCH_CLIENTS:-16 64}"
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-uniform hot-source hot-sink}"
read -r -a MODES <<<"${BENCH_MODES:-durable cpu}"
read -r -a OPEN_MODES <<<"${BENCH_OPEN_MODES-durable}"
USERS="${BENCH_USERS:-32}"
MAX_RATE="${BENCH_MAX_RATE:-3000}"
LABEL="${BENCH_LABEL:-latest}"
DOC="${BENCH_DOC-$PAYGATE_ROOT/docs/performance.md}"

[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 2 ]] || die "BENCH_DURATION must be whole seconds, at least 2"
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be whole seconds"
((${#CLIENTS[@]} > 0 && ${#SCENARIOS[@]} > 0 && ${#MODES[@]} > 0)) || die "BENCH_CLIENTS, BENCH_SCENARIOS and BENCH_MODES must not be empty"
for c in "${CLIENTS[@]}"; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CLIENTS: $c is not a client count"; done
for s in "${SCENARIOS[@]}"; do [[ "$s" =~ ^(uniform|hot-source|hot-sink)$ ]] || die "BENCH_SCENARIOS: unknown $s"; done
for m in "${MODES[@]}"; do [[ "$m" =~ ^(durable|cpu)$ ]] || die "BENCH_MODES: unknown $m"; done
mapfile -t CLIENTS < <(printf '%s\n' "${CLIENTS[@]}" | sort -n -u)
LOW_CLIENTS="${CLIENTS[0]}"
SCALE="${CLIENTS[${#CLIENTS[@]} - 1]}"
PROFILE_CELL="${BENCH_PROFILE-durable uniform $LOW_CLIENTS}"
PROFILE_SECONDS="${BENCH_PROFILE_SECONDS:-$((DURATION - 1 < 15 ? DURATION - 1 : 15))}"

STOPS=()
cleanup() {
	local rc=$? i
	trap '' INT TERM
	for ((i = ${#STOPS[@]} - 1; i >= 0; i--)); do eval "${STOPS[i]}" || true; done
	return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ROOT="$(mktemp -d "${TMPDIR:-/tmp}/paygate-bench.XXXXXX")"
chmod 755 "$ROOT"
if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
	STOPS+=("log 'kept $ROOT'")
else
	STOPS+=("rm -rf '$ROOT'")
fi
RESULTS="$ROOT/results.jsonl"
: >"$RESULTS"

# fail MSG: shows the end of the logs that explain a failure, then dies.
fail() {
	local f
	for f in "$ROOT/paygate.log" "$ROOT/sandbox.log"; do
		[[ -s "$f" ]] || continue
		printf '==> last lines of %s:\n' "$f" >&2
		tail -n 20 "$f" >&2
	done
	die "$*"
}

# ---------------------------------------------------------------------------
# Builds: the gateway (which is also the sandbox) and the load generator.

log "building the gateway and paybench"
# The tree as measured, read before the run writes its profile into docs/.
DESCRIBE="$(cd "$PAYGATE_ROOT" && git describe --always --dirty 2>/dev/null || echo dev)"
GW="$ROOT/paygate"
PB="$ROOT/paybench"
(cd "$PAYGATE_ROOT" && go build -trimpath -ldflags "-X github.com/paygate/paygate/internal/platform/buildinfo.Version=$DESCRIBE" -o "$GW" ./cmd/paygate) ||
	die "building the gateway failed"
(cd "$PAYGATE_TOOLS" && go build -o "$PB" ./cmd/paybench) || die "building paybench failed"

# ---------------------------------------------------------------------------
# PostgreSQL: a throwaway cluster with pg_stat_statements loaded.

ensure_postgres
PGBENCH="${BENCH_PGBENCH:-$PG_BIN/pgbench}"
PG_PORT="$(free_port)"
PG_DIR="$ROOT/pg"
STOPS+=("pg_stop '$PG_DIR'")
pg_start "$PG_DIR" "$PG_PORT"
pg_sql() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
pg_sql -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
log "restarting PostgreSQL with pg_stat_statements"
pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/postgres.log" -w -t 60 restart >/dev/null || {
	tail -n 20 "$PG_DIR/postgres.log" >&2
	die "PostgreSQL did not restart"
}
PG_PID="$(head -n 1 "$PG_DIR/postmaster.pid")"
pg_sql -d postgres -c "CREATE EXTENSION pg_stat_statements" >/dev/null
pg_create_db "$PG_PORT" paygate
pg_create_db "$PG_PORT" pgbench
PG_VERSION="$(pg_sql -d postgres -Atc 'SHOW server_version')"

log "pgbench: initializing scale $SCALE"
"$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -q -s "$SCALE" pgbench >"$ROOT/pgbench-init.log" 2>&1 || {
	cat "$ROOT/pgbench-init.log" >&2
	die "pgbench -i failed"
}

# set_mode durable|cpu: sets the three durability settings, reloads, and
# checks that the server reports them.
SETTINGS=(fsync synchronous_commit full_page_writes wal_sync_method wal_level shared_buffers max_wal_size checkpoint_timeout max_connections shared_preload_libraries)
set_mode() {
	local mode="$1" v list
	case "$mode" in
	durable) v=on ;;
	cpu) v=off ;;
	esac
	pg_sql -d postgres -c "ALTER SYSTEM SET fsync = $v" -c "ALTER SYSTEM SET synchronous_commit = $v" \
		-c "ALTER SYSTEM SET full_page_writes = $v" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
	list="$(printf "'%s'," "${SETTINGS[@]}")"
	pg_sql -d postgres -At -F'|' -c "SELECT name, current_setting(name) FROM pg_settings WHERE name IN (${list%,})
		ORDER BY array_position(ARRAY[${list%,}], name::text)" >"$ROOT/settings-$mode.txt"
	local s
	for s in fsync synchronous_commit full_page_writes; do
		grep -qx "$s|$v" "$ROOT/settings-$mode.txt" || die "PostgreSQL did not take $s = $v: $(tr '\n' ' ' <"$ROOT/settings-$mode.txt")"
	done
	log "mode $mode: $(tr '\n' ' ' <"$ROOT/settings-$mode.txt")"
	pg_sql -d postgres -c CHECKPOINT >/dev/null
}

# ---------------------------------------------------------------------------
# The gateway's neighbours: devkafka, an SMTP sink, the payment sandbox.

build_devkafka
KAFKA_PORT="$(free_port)"
"$DEVKAFKA_BIN" -addr "127.0.0.1:$KAFKA_PORT" >"$ROOT/devkafka.log" 2>&1 &
STOPS+=("kill $! 2>/dev/null; wait $! 2>/dev/null")
wait_port "$KAFKA_PORT" 20 $! || die "devkafka did not start"

SMTP_PORT="$(free_port)"
"$PB" smtp-sink -listen "127.0.0.1:$SMTP_PORT" >"$ROOT/smtp-sink.log" 2>&1 &
STOPS+=("kill $! 2>/dev/null; wait $! 2>/dev/null")
wait_port "$SMTP_PORT" 20 $! || die "the SMTP sink did not start"

HTTP_PORT="$(free_port)"
OPS_PORT="$(free_port)"
SANDBOX_PORT="$(free_port)"
API="http://127.0.0.1:$HTTP_PORT"
SANDBOX="http://127.0.0.1:$SANDBOX_PORT"
PROVIDER_KEY="xnd_development_bench_$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
PROVIDER_TOKEN="bench-callback-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
# No -auto-pay: paybench pays each top-up through the sandbox's admin API
# once the gateway has recorded it (see topUp in tools/cmd/paybench).
env -u SANDBOX_SECRET_KEY -u SANDBOX_CALLBACK_TOKEN "$GW" sandbox \
	-listen "127.0.0.1:$SANDBOX_PORT" -callback-url "$API" \
	-secret-key "$PROVIDER_KEY" -callback-token "$PROVIDER_TOKEN" >"$ROOT/sandbox.log" 2>&1 &
STOPS+=("kill $! 2>/dev/null; wait $! 2>/dev/null")
wait_port "$SANDBOX_PORT" 20 $! || fail "the payment sandbox did not start"

# The gateway's environment: its own settings only (PAYGATE_* and OTEL_*
# variables of the caller's shell are dropped).
GW_ENV=()
while read -r v; do GW_ENV+=(-u "$v"); done < <(compgen -e | grep -E '^(PAYGATE|OTEL)_' || true)
GW_ENV+=(
	PAYGATE_ENV=prod PAYGATE_LOG_LEVEL=warn
	PAYGATE_HTTP_ADDR="127.0.0.1:$HTTP_PORT" PAYGATE_METRICS_ADDR="127.0.0.1:$OPS_PORT" PAYGATE_PPROF_ENABLED=true
	PAYGATE_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/paygate?sslmode=disable"
	PAYGATE_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
	PAYGATE_JWT_PRIVATE_KEY="$("$GW" jwt-keygen | sed -n 's/^PAYGATE_JWT_PRIVATE_KEY=//p')"
	PAYGATE_PROVIDER=sandbox PAYGATE_PROVIDER_URL="http://127.0.0.1:$SANDBOX_PORT"
	PAYGATE_PROVIDER_SECRET_KEY="$PROVIDER_KEY" PAYGATE_PROVIDER_CALLBACK_TOKEN="$PROVIDER_TOKEN"
	PAYGATE_SMTP_HOST=127.0.0.1 PAYGATE_SMTP_PORT="$SMTP_PORT"
	# Every bench user registers from 127.0.0.1; tokens outlive a long run.
	PAYGATE_REGISTER_MAX_PER_IP=1000000 PAYGATE_ACCESS_TOKEN_TTL=12h
	PAYGATE_SHUTDOWN_DRAIN_DELAY=0s OTEL_TRACES_EXPORTER=none
)
read -r -a GW_EXTRA <<<"${BENCH_GATEWAY_ENV:-}"
for v in "${GW_EXTRA[@]}"; do
	[[ "$v" =~ ^((PAYGATE|OTEL)_[A-Z0-9_]+|GOGC|GOMEMLIMIT|GOMAXPROCS)=.*$ ]] || die "BENCH_GATEWAY_ENV: $v is not a PAYGATE_, OTEL_ or Go runtime (GOGC, GOMEMLIMIT, GOMAXPROCS) NAME=value"
done
GW_ENV+=("${GW_EXTRA[@]}")

GW_PID=""
# start_gateway MODE CONNS [untimed]: starts the gateway with a pool of
# CONNS connections and waits for /readyz 200, recording the time from
# exec unless untimed.
start_gateway() {
	local mode="$1" conns="$2" results="$RESULTS" t0
	[[ "${3:-}" == untimed ]] && results=""
	t0="$EPOCHREALTIME"
	env "${GW_ENV[@]}" PAYGATE_DATABASE_MAX_CONNS="$conns" PAYGATE_MIGRATE_ON_START=false \
		PAYGATE_KAFKA_CREATE_TOPICS="${CREATE_TOPICS:-false}" "$GW" >>"$ROOT/paygate.log" 2>&1 &
	GW_PID=$!
	"$PB" ready -url "$API" -since "$t0" -pid "$GW_PID" -mode "$mode" -results "$results" || fail "the gateway did not become ready"
}

# stop_gateway: SIGTERM, and the gateway must exit cleanly.
stop_gateway() {
	[[ -n "$GW_PID" ]] || return 0
	local rc=0
	kill -TERM "$GW_PID" 2>/dev/null || true
	wait "$GW_PID" || rc=$?
	GW_PID=""
	((rc == 0)) || fail "the gateway exited with status $rc"
}
# shellcheck disable=SC2016 # expanded when the stop runs
STOPS+=('[[ -z "$GW_PID" ]] || { kill -TERM "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null; }')

log "migrating the paygate database"
env "${GW_ENV[@]}" "$GW" migrate >>"$ROOT/paygate.log" 2>&1 || fail "paygate migrate failed"
# A first, untimed start creates the Kafka topics; users are seeded then.
CREATE_TOPICS=true start_gateway setup 16 untimed
"$PB" seed -url "$API" -users "$USERS" -out "$ROOT/users.json" || fail "seeding users failed"
stop_gateway
LOADAVG_CELLS="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------
# The cells.

in_list() {
	local x="$1" y
	shift
	for y in "$@"; do [[ "$x" == "$y" ]] && return 0; done
	return 1
}

# sample-waits.sh, started with the profiled window: every 100 ms, what
# each busy session of the paygate database runs (its query's name) and
# waits on, from pg_stat_activity, into waits.raw.
cat >"$ROOT/sample-waits.sh" <<EOF
for ((i = 0; i < $((PROFILE_SECONDS * 10)); i++)); do
	'$PG_BIN/psql' -h 127.0.0.1 -p $PG_PORT -U postgres -X -qAt -d postgres -c "
		SELECT coalesce(substring(query FROM '-- name: (\\w+)'), split_part(lower(btrim(query)), ' ', 1)) || '|' || state || '|' ||
			coalesce(wait_event_type || ':' || wait_event, 'on CPU')
		FROM pg_stat_activity WHERE datname = 'paygate' AND state <> 'idle' AND pid <> pg_backend_pid()" >>'$ROOT/waits.raw'
	sleep 0.1
done
EOF

PROFILE_FILE=""
run_cell() { # MODE CLIENTS SCENARIO [extra paybench flags...]
	local mode="$1" clients="$2" scen="$3"
	shift 3
	local -a extra=()
	# "open" in place of the client count profiles the open-loop cell.
	if { [[ "$PROFILE_CELL" == "$mode $scen $clients" ]] && (($# == 0)); } ||
		{ [[ "$PROFILE_CELL" == "$mode $scen open" ]] && (($# > 0)); }; then
		PROFILE_FILE="$ROOT/cpu.pprof"
		extra+=(-cpuprofile-url "http://127.0.0.1:$OPS_PORT/debug/pprof/profile?seconds=$PROFILE_SECONDS"
			-cpuprofile-out "$PROFILE_FILE"
			-at-start "'$PG_BIN/psql' -h 127.0.0.1 -p $PG_PORT -U postgres -X -qAt -d postgres -c 'SELECT pg_stat_statements_reset()' >/dev/null; bash '$ROOT/sample-waits.sh' >/dev/null 2>&1 &")
	fi
	pg_sql -d postgres -c CHECKPOINT >/dev/null
	"$PB" run -url "$API" -users "$ROOT/users.json" -scenario "$scen" -clients "$clients" \
		-duration "${DURATION}s" -warmup "${WARMUP}s" -mode "$mode" -results "$RESULTS" \
		-sandbox-url "$SANDBOX" -pid "$GW_PID" -pg-pid "$PG_PID" -max-rate "$MAX_RATE" \
		-metrics-url "http://127.0.0.1:$OPS_PORT/metrics" "${extra[@]}" "$@" ||
		fail "paybench failed: $mode $scen $clients clients"
	if [[ -n "$PROFILE_FILE" && ! -s "$ROOT/cpu-top.txt" ]]; then
		local what="$clients clients"
		(($# > 0)) && what="open loop"
		dump_profile "$mode, $scen, $what"
	fi
}

# dump_profile CELL: pprof -top of the CPU profile, and pg_stat_statements
# of the paygate database by total time, calls and mean time.
dump_profile() {
	go tool pprof -top -nodecount=35 "$GW" "$PROFILE_FILE" 2>/dev/null >"$ROOT/cpu-top.txt" ||
		die "go tool pprof could not read the CPU profile"
	go tool pprof -top -cum -nodecount=45 "$GW" "$PROFILE_FILE" 2>/dev/null | sed -n '/flat%/,$p' >"$ROOT/cpu-top-cum.txt" ||
		die "go tool pprof could not read the CPU profile"
	PROFILE_CELL_DESC="$1, ${PROFILE_SECONDS} s of the ${DURATION} s window"
	local by
	for by in total:total_exec_time calls:calls mean:mean_exec_time; do
		{
			echo "| calls | total ms | % of total | mean ms | rows | statement |"
			echo "|---:|---:|---:|---:|---:|---|"
			pg_sql -d postgres -At -c "
				SELECT format('| %s | %s | %s | %s | %s | \`%s\` |', calls, round(total_exec_time::numeric, 1),
					round((100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0))::numeric, 1),
					round(mean_exec_time::numeric, 3), rows,
					left(replace(regexp_replace(query, '\s+', ' ', 'g'), '|', '\|'), 200))
				FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
				WHERE d.datname = 'paygate' ORDER BY ${by#*:} DESC LIMIT 15"
		} >"$ROOT/pgss-${by%%:*}.md"
	done
	pg_sql -d postgres -At -c "
		SELECT format('%s statements, %s calls, %s ms in all', count(*), sum(calls), round(sum(total_exec_time)::numeric, 1))
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'paygate'" >>"$ROOT/pgss-total.md"
	sed -i '$s/^/\n/' "$ROOT/pgss-total.md"
	if [[ -s "$ROOT/waits.raw" ]]; then
		{
			echo "| samples | share | statement | state | waiting on |"
			echo "|---:|---:|---|---|---|"
			sort "$ROOT/waits.raw" | uniq -c | sort -rn | head -20 |
				awk -v total="$(wc -l <"$ROOT/waits.raw")" '{ n = $1; sub(/^ *[0-9]+ /, ""); split($0, f, "|");
					printf "| %d | %.1f%% | `%s` | %s | %s |\n", n, 100 * n / total, f[1], f[2], f[3] }'
			echo
			echo "$(wc -l <"$ROOT/waits.raw") session samples in all"
		} >"$ROOT/waits.md"
	fi
	log "CPU profile, pg_stat_statements and session samples taken ($PROFILE_CELL_DESC)"
	sed -n '1,20p' "$ROOT/cpu-top.txt"
}

PROFILE_CELL_DESC=""
for mode in "${MODES[@]}"; do
	set_mode "$mode"
	for clients in "${CLIENTS[@]}"; do
		log "$mode, $clients clients: starting the gateway with $((clients + 8)) database connections"
		start_gateway "$mode" $((clients + 8))
		"$PB" quiesce -pid "$GW_PID" || fail "the gateway did not go idle"
		pg_sql -d postgres -c CHECKPOINT >/dev/null
		log "$mode, $clients clients: pgbench tpcb-like -c $clients -j 2 -T $DURATION (scale $SCALE)"
		"$PB" pgbench -mode "$mode" -clients "$clients" -scale "$SCALE" -pg-pid "$PG_PID" -results "$RESULTS" -- \
			"$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$clients" -j 2 -T "$DURATION" -b tpcb-like pgbench ||
			die "pgbench failed: $mode, $clients clients"
		for scen in "${SCENARIOS[@]}"; do
			log "$mode, $clients clients: paygate $scen"
			run_cell "$mode" "$clients" "$scen"
		done
		if [[ "$clients" == "$LOW_CLIENTS" ]] && in_list "$mode" "${OPEN_MODES[@]}"; then
			for scen in "${SCENARIOS[@]}"; do
				if [[ -n "${BENCH_OPEN_RATE:-}" ]]; then
					log "$mode: paygate $scen, open loop at a fixed $BENCH_OPEN_RATE/s"
					run_cell "$mode" "$clients" "$scen" -rate "$BENCH_OPEN_RATE"
				else
					log "$mode: paygate $scen, open loop at ${BENCH_RATE_OF_PEAK:-0.5}× the $clients-client peak"
					run_cell "$mode" "$clients" "$scen" -rate-of-peak "${BENCH_RATE_OF_PEAK:-0.5}" -peak-clients "$clients"
				fi
			done
		fi
		stop_gateway
	done
done

# ---------------------------------------------------------------------------
# Report.

DOC_PROFILE=""
if [[ -n "$DOC" && -s "${PROFILE_FILE:-/nonexistent}" ]]; then
	if (($(stat -c %s "$PROFILE_FILE") <= 256 * 1024)); then
		mkdir -p "$(dirname "$DOC")/profiles"
		cp "$PROFILE_FILE" "$(dirname "$DOC")/profiles/cpu-$LABEL.pprof"
		DOC_PROFILE="docs/profiles/cpu-$LABEL.pprof"
	else
		warn "the CPU profile is over 256 KiB: only its -top text goes into the document"
	fi
fi
elapsed=$((SECONDS - BENCH_T0))
overrides="$(compgen -e | grep '^BENCH_' | while read -r v; do printf '%s=%s ' "$v" "${!v}"; done || true)"
cat >"$ROOT/meta.env" <<EOF
commit=$(cd "$PAYGATE_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
describe=$DESCRIBE
date=$(date -u '+%Y-%m-%d %H:%M UTC')
command=${overrides}make bench
loadavg=$LOADAVG_START
loadavg_cells=$LOADAVG_CELLS
loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)
cpus=$(nproc)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
kernel=$(uname -sr)
go_version=$(go env GOVERSION)
pg_version=$PG_VERSION
cell=${WARMUP} s warm-up, then a ${DURATION} s window; ${USERS} users; pgbench scale $SCALE, -j 2
gateway=PAYGATE_ENV=prod, log level warn, a pool of clients + 8 database connections, restarted for each client count${BENCH_GATEWAY_ENV:+; also $BENCH_GATEWAY_ENV}
wall=$((elapsed / 60)) min $((elapsed % 60)) s up to the report
profile_cell=$PROFILE_CELL_DESC
profile_file=$DOC_PROFILE
EOF
"$PB" report -results "$RESULTS" -dir "$ROOT" -label "$LABEL" -doc "$DOC" || die "report failed"
elapsed=$((SECONDS - BENCH_T0))
log "make bench took $((elapsed / 60)) min $((elapsed % 60)) s"
