#!/usr/bin/env bash
# Runs the gateway locally with its dependencies (`make run`):
#
#   postgres  throwaway cluster in .local/run/pg on 127.0.0.1:5432 (or a free
#             port when 5432 is taken), database "paygate"; skipped when
#             PAYGATE_DATABASE_URL is set.
#   kafka     devkafka (kfake) on 127.0.0.1:9092, data in .local/run/kafka;
#             skipped when PAYGATE_KAFKA_BROKERS is set.
#   mailpit   SMTP 127.0.0.1:1025, inbox/API http://127.0.0.1:8025; skipped
#             when PAYGATE_SMTP_HOST is set.
#   sandbox   the payment provider sandbox (paygate sandbox, from the same
#             binary) on 127.0.0.1:8090, paying every top-up after a second
#             and calling the gateway back; state in .local/run/sandbox.json.
#             The gateway gets PAYGATE_PROVIDER=sandbox and its URL. Skipped
#             when PAYGATE_PROVIDER is another provider (xendit) or
#             PAYGATE_PROVIDER_URL is set.
#   paygate   go build ./cmd/paygate (or PAYGATE_BIN=/path to run another
#             binary), with PAYGATE_* settings for the services above. Every
#             variable already set in the environment wins.
#
# Ctrl-C / SIGTERM stops everything in reverse start order (gateway first,
# then the sandbox, prometheus, mailpit, kafka, postgres), however many
# signals arrive meanwhile (tested by internal/devscripts). PAYGATE_STATE
# (default .local) and the PAYGATE_DEV_*_PORT variables move the state and
# the ports (PAYGATE_DEV_SANDBOX_PORT the sandbox's). Logs of the background
# services are in .local/run/logs/.
#
# Adding a service (e.g. Prometheus, Jaeger): write start_<name> that starts
# it, registers its stop with push_stop, and exports the env the gateway
# needs; then add <name> to DEV_SERVICES.

# shellcheck disable=SC2317 # functions are called indirectly (traps, start_$name)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUN_DIR="$PAYGATE_STATE/run"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"

# Services started before the gateway, in order.
DEV_SERVICES=(postgres kafka mailpit prometheus sandbox)
# JAEGER=1 adds Jaeger v2 (built once from its Go module, slowly)
# and points the gateway's OTLP trace exporter at it.
[[ "${JAEGER:-0}" == 1 ]] && DEV_SERVICES+=(jaeger)

# ---------------------------------------------------------------------------
# Stop stack: each started thing pushes the command that stops it; cleanup
# runs them last-in first-out.

STOP_STACK=()
push_stop() { STOP_STACK+=("$*"); }

# A stop runs to its end however many signals arrive: supervisors and
# `timeout` signal the whole process group, and GNU make forwards TERM to
# this script as well, so two or more signals come at once, and Ctrl-C is
# often pressed again. The first signal starts the stop and ignores the
# rest from its first line on; a signal bash had already queued finds the
# stop under way and returns to it (it used to exit the script in the
# middle of the stop, leaving the services running). The stop also
# survives its output going away (the terminal or the pipe of a killed
# supervisor): SIGPIPE is ignored and errexit is off, so a failed log line
# cannot end it.
CLEANED_UP=0
cleanup() {
	local rc=$?
	trap '' INT TERM HUP PIPE
	set +e
	((CLEANED_UP)) && return 0
	CLEANED_UP=1
	restore_output
	local i
	for ((i = ${#STOP_STACK[@]} - 1; i >= 0; i--)); do
		eval "${STOP_STACK[i]}" || true
	done
	log "all stopped"
	return "$rc"
}

on_signal() {
	trap '' INT TERM HUP PIPE
	((CLEANED_UP)) && return 0
	restore_output
	{
		echo
		log "received SIG$1, shutting down"
	} 2>/dev/null || true
	cleanup
	# A requested stop is a clean exit.
	trap - EXIT
	exit 0
}

trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# start_bg NAME LOGFILE CMD...: starts CMD in the background in its own
# session (so terminal signals go to this script only), records its pid in
# BG_PID and registers its stop.
BG_PID=""
start_bg() {
	local name="$1" logfile="$2"
	shift 2
	setsid "$@" </dev/null >>"$logfile" 2>&1 &
	BG_PID=$!
	echo "$BG_PID" >"$PID_DIR/$name.pid"
	push_stop "stop_pid $name $BG_PID 15; rm -f '$PID_DIR/$name.pid'"
}

fail_with_log() {
	local name="$1" logfile="$2"
	tail -n 30 "$logfile" >&2 || true
	die "$name failed to start (log: $logfile)"
}

# ---------------------------------------------------------------------------
# Services.

PG_PORT=""
start_postgres() {
	if [[ -n "${PAYGATE_DATABASE_URL:-}" ]]; then
		log "PAYGATE_DATABASE_URL is set, not starting PostgreSQL"
		return 0
	fi
	ensure_postgres
	local dir="${PAYGATE_DEV_PG_DIR:-$RUN_DIR/pg}"
	pg_stop "$dir" # left over from a run that was killed
	PG_PORT="$(port_or_free "${PAYGATE_DEV_PG_PORT:-5432}")"
	[[ "$PG_PORT" == "${PAYGATE_DEV_PG_PORT:-5432}" ]] ||
		warn "port ${PAYGATE_DEV_PG_PORT:-5432} is taken, PostgreSQL uses $PG_PORT"
	push_stop "pg_stop '$dir'"
	pg_start "$dir" "$PG_PORT"
	pg_create_db "$PG_PORT" paygate
	export PAYGATE_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/paygate?sslmode=disable"
}

start_kafka() {
	if [[ -n "${PAYGATE_KAFKA_BROKERS:-}" ]]; then
		log "PAYGATE_KAFKA_BROKERS is set, using $PAYGATE_KAFKA_BROKERS"
		return 0
	fi
	build_devkafka
	kill_stale_pidfile devkafka "$PID_DIR/devkafka.pid" "$PAYGATE_CACHE/bin/devkafka-"
	local port logfile="$LOG_DIR/devkafka.log"
	port="$(port_or_free "${PAYGATE_DEV_KAFKA_PORT:-9092}")"
	[[ "$port" == "${PAYGATE_DEV_KAFKA_PORT:-9092}" ]] ||
		warn "port ${PAYGATE_DEV_KAFKA_PORT:-9092} is taken, devkafka uses $port"
	mkdir -p "$RUN_DIR/kafka"
	: >"$logfile"
	log "starting devkafka on 127.0.0.1:$port"
	start_bg devkafka "$logfile" "$DEVKAFKA_BIN" -addr "127.0.0.1:$port" -data-dir "$RUN_DIR/kafka" -partitions 3
	local pid="$BG_PID" i
	for ((i = 0; i < 300; i++)); do
		grep -q '^devkafka: listening on' "$logfile" && break
		kill -0 "$pid" 2>/dev/null || fail_with_log devkafka "$logfile"
		sleep 0.1
	done
	grep -q '^devkafka: listening on' "$logfile" || fail_with_log devkafka "$logfile"
	export PAYGATE_KAFKA_BROKERS="127.0.0.1:$port"
}

MAIL_UI_URL=""
start_mailpit() {
	if [[ -n "${PAYGATE_SMTP_HOST:-}" ]]; then
		log "PAYGATE_SMTP_HOST is set, not starting mailpit"
		return 0
	fi
	build_mailpit
	kill_stale_pidfile mailpit "$PID_DIR/mailpit.pid" "$PAYGATE_CACHE/bin/mailpit-"
	local smtp_port http_port logfile="$LOG_DIR/mailpit.log"
	smtp_port="$(port_or_free "${PAYGATE_DEV_SMTP_PORT:-1025}")"
	http_port="$(port_or_free "${PAYGATE_DEV_MAIL_UI_PORT:-8025}")"
	: >"$logfile"
	log "starting mailpit (SMTP 127.0.0.1:$smtp_port, HTTP 127.0.0.1:$http_port)"
	start_bg mailpit "$logfile" "$MAILPIT_BIN" \
		--smtp "127.0.0.1:$smtp_port" --listen "127.0.0.1:$http_port" \
		--database "$RUN_DIR/mailpit.db" \
		--disable-version-check --smtp-disable-rdns --smtp-auth-accept-any --smtp-auth-allow-insecure
	local pid="$BG_PID"
	if ! wait_port "$smtp_port" 30 "$pid" || ! wait_port "$http_port" 30 "$pid"; then
		fail_with_log mailpit "$logfile"
	fi
	export PAYGATE_SMTP_HOST=127.0.0.1 PAYGATE_SMTP_PORT="$smtp_port"
	MAIL_UI_URL="http://127.0.0.1:$http_port"
}

PROM_URL=""
# start_prometheus: Debian's Prometheus scraping the gateway's operations
# listener (PAYGATE_METRICS_ADDR, set by main before the services start)
# every 5s.
start_prometheus() {
	ensure_apt_tool prometheus prometheus
	kill_stale_pidfile prometheus "$PID_DIR/prometheus.pid" "prometheus"
	local port target logfile="$LOG_DIR/prometheus.log"
	port="$(port_or_free "${PAYGATE_DEV_PROMETHEUS_PORT:-9090}")"
	target="$PAYGATE_METRICS_ADDR"
	[[ "$target" == :* ]] && target="127.0.0.1$target"
	mkdir -p "$RUN_DIR/prometheus"
	cat >"$RUN_DIR/prometheus/prometheus.yml" <<YAML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $PAYGATE_ROOT/internal/observability/alerts/paygate-rules.yaml
scrape_configs:
  - job_name: paygate
    static_configs:
      - targets: ["$target"]
YAML
	: >"$logfile"
	log "starting Prometheus on 127.0.0.1:$port (scraping $target)"
	start_bg prometheus "$logfile" prometheus --config.file="$RUN_DIR/prometheus/prometheus.yml" \
		--storage.tsdb.path="$RUN_DIR/prometheus/data" --web.listen-address="127.0.0.1:$port"
	wait_port "$port" 30 "$BG_PID" || fail_with_log prometheus "$logfile"
	PROM_URL="http://127.0.0.1:$port"
}

SANDBOX_URL=""
# start_sandbox: the payment provider sandbox (`paygate sandbox`, from the
# gateway's binary) with auto-pay, sending its callbacks to the gateway's
# HTTP address (PAYGATE_HTTP_ADDR, set by main before the services start).
# Both sides use the same credentials: PAYGATE_PROVIDER_SECRET_KEY and
# PAYGATE_PROVIDER_CALLBACK_TOKEN when set, else the sandbox's development
# ones, which the gateway also defaults to in dev (SANDBOX_* variables
# left in the environment are dropped, so they cannot come between).
start_sandbox() {
	if [[ "${PAYGATE_PROVIDER:-sandbox}" != sandbox ]]; then
		log "PAYGATE_PROVIDER=$PAYGATE_PROVIDER, not starting the payment sandbox"
		return 0
	fi
	if [[ -n "${PAYGATE_PROVIDER_URL:-}" ]]; then
		log "PAYGATE_PROVIDER_URL is set, using the sandbox at $PAYGATE_PROVIDER_URL"
		export PAYGATE_PROVIDER=sandbox
		return 0
	fi
	kill_stale_pidfile sandbox "$PID_DIR/sandbox.pid" "$GATEWAY_BIN sandbox"
	local port gw logfile="$LOG_DIR/sandbox.log"
	port="$(port_or_free "${PAYGATE_DEV_SANDBOX_PORT:-8090}")"
	[[ "$port" == "${PAYGATE_DEV_SANDBOX_PORT:-8090}" ]] ||
		warn "port ${PAYGATE_DEV_SANDBOX_PORT:-8090} is taken, the payment sandbox uses $port"
	gw="$(loopback_url "$PAYGATE_HTTP_ADDR")"
	local -a creds=(-u SANDBOX_SECRET_KEY -u SANDBOX_CALLBACK_TOKEN)
	[[ -n "${PAYGATE_PROVIDER_SECRET_KEY:-}" ]] && creds+=("SANDBOX_SECRET_KEY=$PAYGATE_PROVIDER_SECRET_KEY")
	[[ -n "${PAYGATE_PROVIDER_CALLBACK_TOKEN:-}" ]] && creds+=("SANDBOX_CALLBACK_TOKEN=$PAYGATE_PROVIDER_CALLBACK_TOKEN")
	: >"$logfile"
	log "starting the payment sandbox on 127.0.0.1:$port (auto-pay, callbacks to $gw)"
	start_bg sandbox "$logfile" env "${creds[@]}" "$GATEWAY_BIN" sandbox -auto-pay \
		-listen "127.0.0.1:$port" -callback-url "$gw" -state "$RUN_DIR/sandbox.json"
	wait_port "$port" 30 "$BG_PID" || fail_with_log sandbox "$logfile"
	SANDBOX_URL="http://127.0.0.1:$port"
	export PAYGATE_PROVIDER=sandbox PAYGATE_PROVIDER_URL="$SANDBOX_URL"
}

JAEGER_URL=""
# start_jaeger: Jaeger v2 with k8s/jaeger/config.yaml (the cluster's
# configuration: in-memory storage, OTLP receivers, query UI and API),
# every port on loopback.
start_jaeger() {
	build_jaeger
	local logfile="$LOG_DIR/jaeger.log"
	: >"$logfile"
	log "starting Jaeger v2 (UI 127.0.0.1:16686, OTLP 127.0.0.1:4317/4318)"
	JAEGER_LISTEN_HOST=127.0.0.1 start_bg jaeger "$logfile" "$JAEGER_BIN" --config="$PAYGATE_ROOT/k8s/jaeger/config.yaml"
	wait_port 16686 120 "$BG_PID" || fail_with_log jaeger "$logfile"
	export OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
	JAEGER_URL="http://127.0.0.1:16686"
}

# ---------------------------------------------------------------------------
# Gateway.

# loopback_url ADDR: http://HOST:PORT for a listen address, with an empty
# or wildcard host (":8080", "0.0.0.0:8080") as 127.0.0.1.
loopback_url() {
	local addr="$1" host port
	host="${addr%:*}" port="${addr##*:}"
	case "$host" in "" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;; esac
	echo "http://$host:$port"
}

build_gateway() {
	if [[ -n "${PAYGATE_BIN:-}" ]]; then
		[[ -x "$PAYGATE_BIN" ]] || die "PAYGATE_BIN=$PAYGATE_BIN is not an executable file"
		GATEWAY_BIN="$PAYGATE_BIN"
		return 0
	fi
	GATEWAY_BIN="$PAYGATE_STATE/bin/paygate"
	# The Redoc bundle GET /docs serves is embedded at build time.
	build_docs || die "building the API docs bundle failed (make docs)"
	log "building ./cmd/paygate -> $GATEWAY_BIN"
	mkdir -p "$PAYGATE_STATE/bin"
	(cd "$PAYGATE_ROOT" && go build -o "$GATEWAY_BIN" ./cmd/paygate) || die "building the gateway failed"
}

main() {
	mkdir -p "$LOG_DIR" "$PID_DIR"
	command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is required"

	# Build first: a compile error should not cost a service start.
	build_gateway
	kill_stale_pidfile paygate "$PID_DIR/paygate.pid" "$GATEWAY_BIN"

	# The operations listener (/metrics, /readyz with details) is chosen
	# first: Prometheus scrapes it.
	if [[ -z "${PAYGATE_METRICS_ADDR:-}" ]]; then
		PAYGATE_METRICS_ADDR="127.0.0.1:$(port_or_free "${PAYGATE_DEV_METRICS_PORT:-9464}")"
	fi
	export PAYGATE_METRICS_ADDR
	# The API address too: the payment sandbox calls the gateway back there.
	: "${PAYGATE_HTTP_ADDR:=127.0.0.1:8080}"
	export PAYGATE_HTTP_ADDR

	local svc
	for svc in "${DEV_SERVICES[@]}"; do
		"start_$svc"
	done

	: "${PAYGATE_ENV:=dev}"
	: "${PAYGATE_KAFKA_CREATE_TOPICS:=true}"
	: "${PAYGATE_SMTP_PORT:=1025}"
	: "${PAYGATE_MIGRATE_ON_START:=true}"
	: "${OTEL_TRACES_EXPORTER:=none}"
	# No load balancer to drain in dev: make Ctrl-C quick.
	: "${PAYGATE_SHUTDOWN_DRAIN_DELAY:=0s}"
	# Every local registration (make tour, curl, a browser) comes from
	# 127.0.0.1: the production limit per IP would stop a developer after
	# a few tours an hour.
	: "${PAYGATE_REGISTER_MAX_PER_IP:=10000}"
	# A dev signing key, made once and kept with the other local state, so
	# tokens survive a restart of make run.
	if [[ -z "${PAYGATE_JWT_PRIVATE_KEY:-}" ]]; then
		local keyfile="$RUN_DIR/jwt.key"
		if [[ ! -s "$keyfile" ]]; then
			"$GATEWAY_BIN" jwt-keygen | sed -n 's/^PAYGATE_JWT_PRIVATE_KEY=//p' >"$keyfile"
			chmod 600 "$keyfile"
		fi
		PAYGATE_JWT_PRIVATE_KEY="$(cat "$keyfile")"
	fi
	# A dev administrator; never use these outside make run.
	: "${PAYGATE_BOOTSTRAP_ADMIN_EMAIL:=admin@paygate.local}"
	: "${PAYGATE_BOOTSTRAP_ADMIN_PASSWORD:=admin-password}"
	export PAYGATE_ENV PAYGATE_HTTP_ADDR PAYGATE_KAFKA_CREATE_TOPICS PAYGATE_SMTP_PORT \
		PAYGATE_MIGRATE_ON_START OTEL_TRACES_EXPORTER PAYGATE_SHUTDOWN_DRAIN_DELAY PAYGATE_REGISTER_MAX_PER_IP \
		PAYGATE_JWT_PRIVATE_KEY PAYGATE_BOOTSTRAP_ADMIN_EMAIL PAYGATE_BOOTSTRAP_ADMIN_PASSWORD

	local api ops provider
	api="$(loopback_url "$PAYGATE_HTTP_ADDR")"
	ops="$(loopback_url "$PAYGATE_METRICS_ADDR")"
	if [[ -n "$SANDBOX_URL" ]]; then
		local pay="${GATEWAY_BIN#"$PAYGATE_ROOT"/} sandbox pay <topup id>"
		[[ "$SANDBOX_URL" == "http://127.0.0.1:8090" ]] || pay+=" -url $SANDBOX_URL"
		provider="$SANDBOX_URL (sandbox, auto-pay; pay by hand: $pay)"
	elif [[ -n "${PAYGATE_PROVIDER_URL:-}" ]]; then
		provider="$PAYGATE_PROVIDER_URL ($PAYGATE_PROVIDER, not started by make run)"
	else
		provider="$PAYGATE_PROVIDER at its default URL"
	fi
	cat >&2 <<EOF

  paygate (dev)
    API         $api
    API docs    $api/docs  (OpenAPI: $api/openapi.yaml; tour: make tour)
    health      $api/healthz, $api/readyz
    metrics     $ops/metrics  (operations listener; $ops/readyz names failed checks)
    mail inbox  ${MAIL_UI_URL:-(external SMTP ${PAYGATE_SMTP_HOST:-}:${PAYGATE_SMTP_PORT})}
    database    ${PAYGATE_DATABASE_URL:-}
    kafka       ${PAYGATE_KAFKA_BROKERS:-}
    provider    $provider
    admin       $PAYGATE_BOOTSTRAP_ADMIN_EMAIL (password: $PAYGATE_BOOTSTRAP_ADMIN_PASSWORD)
    prometheus  ${PROM_URL:-(not started)}
    jaeger      ${JAEGER_URL:-(make run JAEGER=1)}
    logs        $LOG_DIR/

  Ctrl-C stops everything.

EOF

	log "starting gateway: $GATEWAY_BIN"
	# The gateway writes to this terminal; it runs in its own session so
	# that Ctrl-C reaches only this script, which stops it first.
	setsid "$GATEWAY_BIN" </dev/null &
	local gw=$!
	echo "$gw" >"$PID_DIR/paygate.pid"
	push_stop "stop_pid paygate $gw 20; rm -f '$PID_DIR/paygate.pid'"

	local rc=0
	wait "$gw" || rc=$?
	warn "gateway exited with status $rc"
	exit "$rc"
}

main "$@"
