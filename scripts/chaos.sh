#!/usr/bin/env bash
# Runs the chaos suite's long variant (`make chaos`): TestChaos in
# internal/chaos with PAYGATE_CHAOS=long, 32 clients and 20 s outages of
# the broker and SMTP. The suite builds the gateway and devkafka itself and
# starts its own PostgreSQL cluster from the system's binaries (installed
# here when missing, as make run does), so nothing else needs to run.
# It ends with the table (README, "Chaos suite"). GOTESTFLAGS adds go test
# flags; PAYGATE_CHAOS_KEEP_LOGS=1 keeps the processes' logs (kept anyway
# on a failure; the last lines say where).

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_postgres
export PAYGATE_PG_BIN="${PAYGATE_PG_BIN:-$PG_BIN}"
export PAYGATE_CHAOS=long
cd "$PAYGATE_ROOT" || exit 1
# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags.
exec go test -count=1 -v -timeout 45m -run '^TestChaos$' ${GOTESTFLAGS:-} ./internal/chaos
