#!/usr/bin/env bash
# `make bench`: paygate's transfer throughput over HTTP next to pgbench's
# TPC-B-like transaction on the same PostgreSQL with the same client
# count, and their ratio. A transfer is one database transaction (locks,
# entries, balances, record, idempotency key, outbox row), so pgbench's
# TPS is a fair ceiling for it.
#
#   BENCH_CLIENTS   concurrent clients for both (default 16)
#   BENCH_DURATION  seconds each run lasts (default 20)
#
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS="${BENCH_CLIENTS:-16}"
DURATION="${BENCH_DURATION:-20}"

STOPS=()
cleanup() {
	local i
	for ((i = ${#STOPS[@]} - 1; i >= 0; i--)); do eval "${STOPS[i]}" || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ROOT="$(mktemp -d "${TMPDIR:-/tmp}/paygate-bench.XXXXXX")"
chmod 755 "$ROOT"
STOPS+=("rm -rf '$ROOT'")

ensure_postgres
PG_PORT="$(free_port)"
STOPS+=("pg_stop '$ROOT/pg'")
pg_start "$ROOT/pg" "$PG_PORT"
pg_create_db "$PG_PORT" paygate
pg_create_db "$PG_PORT" pgbench

build_devkafka
KAFKA_PORT="$(free_port)"
"$DEVKAFKA_BIN" -addr "127.0.0.1:$KAFKA_PORT" >"$ROOT/devkafka.log" 2>&1 &
STOPS+=("kill $! 2>/dev/null; wait $! 2>/dev/null")
wait_port "$KAFKA_PORT" 20 || die "devkafka did not start"

log "building the gateway"
(cd "$PAYGATE_ROOT" && go build -o "$ROOT/paygate" ./cmd/paygate) || die "build failed"
HTTP_PORT="$(free_port)"
key="$("$ROOT/paygate" jwt-keygen | sed -n 's/^PAYGATE_JWT_PRIVATE_KEY=//p')"
env PAYGATE_ENV=prod PAYGATE_LOG_LEVEL=warn PAYGATE_HTTP_ADDR="127.0.0.1:$HTTP_PORT" \
	PAYGATE_METRICS_ADDR="127.0.0.1:$(free_port)" \
	PAYGATE_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/paygate?sslmode=disable" \
	PAYGATE_DATABASE_MAX_CONNS=$((CLIENTS + 8)) PAYGATE_MIGRATE_ON_START=true \
	PAYGATE_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" PAYGATE_KAFKA_CREATE_TOPICS=true \
	PAYGATE_JWT_PRIVATE_KEY="$key" PAYGATE_SHUTDOWN_DRAIN_DELAY=0s OTEL_TRACES_EXPORTER=none \
	PAYGATE_REGISTER_MAX_PER_IP=1000000 \
	"$ROOT/paygate" >"$ROOT/paygate.log" 2>&1 &
gw=$!
STOPS+=("kill $gw 2>/dev/null; wait $gw 2>/dev/null")
for _ in $(seq 1 100); do
	curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
	sleep 0.2
done
curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { cat "$ROOT/paygate.log" >&2; die "gateway not ready"; }

log "paygate: $CLIENTS clients doing transfers for ${DURATION}s"
out="$(cd "$PAYGATE_TOOLS" && go run ./cmd/paybench -url "http://127.0.0.1:$HTTP_PORT" -clients "$CLIENTS" -duration "${DURATION}s")" || {
	echo "$out"
	die "paybench failed"
}
echo "$out"
paygate_tps="$(sed -n 's/^transfers_per_second=//p' <<<"$out")"

log "pgbench: tpcb-like, $CLIENTS clients for ${DURATION}s on the same server"
"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -q -s "$CLIENTS" pgbench >/dev/null 2>&1 || die "pgbench init failed"
pgout="$("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$CLIENTS" -j 2 -T "$DURATION" -b tpcb-like pgbench 2>&1)" || {
	echo "$pgout"
	die "pgbench failed"
}
grep -E "latency average|^tps" <<<"$pgout"
pgbench_tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$pgout" | head -1)"
awk -v a="$paygate_tps" -v b="$pgbench_tps" 'BEGIN { printf "ratio paygate/pgbench = %.1f / %.1f = %.2f\n", a, b, a / b }'
