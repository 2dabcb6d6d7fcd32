#!/usr/bin/env bash
# Runs the checks and tests (`make test`, also what CI runs):
#
#   1. starts a throwaway PostgreSQL cluster in a fresh temp dir on a free
#      port and exports PAYGATE_TEST_DATABASE_URL (stopped and removed on
#      any exit);
#   2. the API docs bundle (make docs: npm ci in web/docs, Redoc copied into
#      api/redoc/ for go:embed), go vet, a gofmt check, staticcheck, a
#      goimports check (imports grouped std, others, then this module's),
#      go build (root and tools/ modules); staticcheck and goimports are
#      pinned in scripts/lib.sh and built once into the cache;
#   3. go test -race -count=1 ./... (root and tools/), plus $GOTESTFLAGS;
#      then a short run of every native fuzz target (func FuzzXxx in the
#      root module: the request decoders, the xendit callback verifier, ...)
#      for $FUZZTIME each (default 10s), from the seed corpora committed
#      under each package's testdata/fuzz/;
#   4. the Kubernetes delivery checks (scripts/k8s-test.sh: Dockerfile, Helm
#      chart, k8s/, skaffold.yaml, against a real kube-apiserver).
#
# Kafka (kfake) and SMTP run in-process inside the Go tests, so PostgreSQL is
# the only external service; Debian's prometheus, chromium, curl and jq are
# installed when missing (start_prometheus, start_browser). To add one, write start_<name> (start it,
# register its stop with push_stop, export its env) and add it to
# TEST_SERVICES; to add a check, add a `step` line in main.
#
# Every step runs even when an earlier one failed; the exit status is 1 when
# any step failed.

# shellcheck disable=SC2317 # functions are called indirectly (traps, start_$name)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TEST_SERVICES=(postgres prometheus browser)

STOP_STACK=()
push_stop() { STOP_STACK+=("$*"); }

CLEANED_UP=0
cleanup() {
	local rc=$?
	((CLEANED_UP)) && return 0
	CLEANED_UP=1
	restore_output
	trap '' INT TERM HUP PIPE
	local i
	for ((i = ${#STOP_STACK[@]} - 1; i >= 0; i--)); do
		eval "${STOP_STACK[i]}" || true
	done
	return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Clusters of earlier runs that were killed before they could clean up.
remove_stale_tmp_roots() {
	local d owner
	for d in "${TMPDIR:-/tmp}"/paygate-test.*; do
		[[ -d "$d" && -f "$d/owner.pid" ]] || continue
		owner="$(cat "$d/owner.pid" 2>/dev/null || true)"
		# Alive and not a zombie: another run is using it.
		if [[ "$owner" =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null &&
			[[ "$(sed 's/.*) //' "/proc/$owner/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]]; then
			continue
		fi
		warn "removing $d left by a killed run"
		pg_stop "$d/pg" || true
		rm -rf "$d"
	done
}
remove_stale_tmp_roots

TMP_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/paygate-test.XXXXXX")"
chmod 755 "$TMP_ROOT"
echo $$ >"$TMP_ROOT/owner.pid"
push_stop "rm -rf '$TMP_ROOT'"

start_postgres() {
	ensure_postgres
	local port
	port="$(free_port)"
	push_stop "pg_stop '$TMP_ROOT/pg'"
	pg_start "$TMP_ROOT/pg" "$port"
	export PAYGATE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	# For tests that start clusters of their own (internal/platform/pgtest).
	export PAYGATE_PG_BIN="${PAYGATE_PG_BIN:-$PG_BIN}"
	log "PAYGATE_TEST_DATABASE_URL=$PAYGATE_TEST_DATABASE_URL"
}

# Prometheus and promtool from Debian: the observability tests run the
# alert rules' unit tests and a real Prometheus scraping a real gateway.
start_prometheus() {
	ensure_apt_tool promtool prometheus
	ensure_apt_tool prometheus prometheus
}

# Headless Chromium renders /docs (internal/apidocs TestDocsRenderInChromium);
# curl and jq run the API tour (scripts/tour.sh, TestTourScript).
start_browser() {
	ensure_apt_tool chromium chromium
	ensure_apt_tool curl curl
	ensure_apt_tool jq jq
}

# validate_collector checks otel-collector/config.yaml with the real
# collector code and that the cluster's copy is the same file.
validate_collector() {
	build_otelcol
	"$OTELCOL_BIN" validate --config "$PAYGATE_ROOT/otel-collector/config.yaml" || return 1
	local copy="$PAYGATE_ROOT/k8s/otel-collector/config.yaml"
	if [[ -f "$copy" ]] && ! diff <(sed '/^#/d' "$PAYGATE_ROOT/otel-collector/config.yaml") <(sed '/^#/d' "$copy") >/dev/null; then
		echo "k8s/otel-collector/config.yaml differs from otel-collector/config.yaml" >&2
		return 1
	fi
}

# ---------------------------------------------------------------------------
# Steps.

FAILED=()
step() {
	local name="$1"
	shift
	log "$name"
	local start=$SECONDS rc=0
	"$@" || rc=$?
	if ((rc != 0)); then
		FAILED+=("$name")
		log "FAIL: $name (exit $rc, $((SECONDS - start))s)"
	else
		log "ok: $name ($((SECONDS - start))s)"
	fi
}

in_dir() {
	local dir="$1"
	shift
	(cd "$dir" && "$@")
}

# go_files: the repo's Go files, tracked or new but not ignored, without
# vendored code.
go_files() {
	if git -C "$PAYGATE_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git -C "$PAYGATE_ROOT" ls-files -z --cached --others --exclude-standard -- '*.go' |
			while IFS= read -r -d '' f; do
				[[ "$f" == vendor/* || "$f" == */vendor/* ]] && continue
				[[ -f "$PAYGATE_ROOT/$f" ]] && printf '%s\n' "$f"
			done
	else
		(cd "$PAYGATE_ROOT" && find . -name '*.go' -not -path '*/vendor/*' -not -path './.local/*' | sed 's|^\./||')
	fi
}

# unformatted_check NAME CMD...: fails when CMD, given the repo's Go
# files, lists any (gofmt -l, goimports -l); NAME names the fix.
unformatted_check() {
	local name="$1" files unformatted arg fix=()
	shift
	files="$(go_files)"
	[[ -n "$files" ]] || return 0
	unformatted="$(cd "$PAYGATE_ROOT" && tr '\n' '\0' <<<"$files" | xargs -0 "$@")"
	if [[ -n "$unformatted" ]]; then
		echo "$name needed on:" >&2
		# shellcheck disable=SC2001
		sed 's/^/  /' <<<"$unformatted" >&2
		for arg in "$@"; do
			[[ "$arg" == -l ]] && arg=-w
			fix+=("$arg")
		done
		echo "run: ${fix[*]} <files>" >&2
		return 1
	fi
}

gofmt_check() { unformatted_check gofmt gofmt -l; }

# goimports_check fails when goimports would change a file: imports in
# three groups, the standard library, other modules, then this module's.
goimports_check() {
	build_goimports || return 1
	unformatted_check goimports "$GOIMPORTS_BIN" -l -local github.com/paygate/paygate
}

# staticcheck_check runs staticcheck's default checks on a module.
staticcheck_check() {
	local dir="$1"
	build_staticcheck || return 1
	in_dir "$dir" "$STATICCHECK_BIN" ./...
}

# go_test runs a module's tests under the race detector.
#
# Two settings cut the wall time without weakening a test: the race
# runtime sleeps atexit_sleep_ms (1 s by default) as every test binary
# exits, a second per package (about 40), and the linker's DWARF (-w),
# which only a debugger reads, is a good part of linking 40 large race
# binaries that go test never caches. Stack traces do not need DWARF.
# And one package more than cores runs at a time (-p): several packages
# spend much of their time waiting (outages, timers, fsync), and on two
# cores the third keeps the CPU busy meanwhile (185 s against 200 s).
go_test() {
	local dir="$1"
	# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags.
	GORACE="${GORACE:-atexit_sleep_ms=0}" in_dir "$dir" go test -race -count=1 -ldflags=-w -p "$(($(nproc) + 1))" ${GOTESTFLAGS:-} ./...
}

# fuzz_targets prints "PACKAGE TARGET" for every native fuzz target of
# the root module, so that a new FuzzXxx joins the step by itself.
fuzz_targets() {
	go_files | grep '_test\.go$' | while IFS= read -r f; do
		sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$PAYGATE_ROOT/$f" | while IFS= read -r target; do
			echo "./$(dirname "$f") $target"
		done
	done | LC_ALL=C sort -u
}

# fuzz_short runs each fuzz target for $FUZZTIME (default 10s): long
# enough to catch a regression the corpus's neighbours reach, short enough
# for every make test. A failing input is written under the package's
# testdata/fuzz/ by go test; commit it with the fix.
fuzz_short() {
	local pkg target rc=0 n=0
	while read -r pkg target; do
		n=$((n + 1))
		log "fuzz $pkg $target (${FUZZTIME:-10s})"
		in_dir "$PAYGATE_ROOT" go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-10s}" "$pkg" || rc=1
	done < <(fuzz_targets)
	((n > 0)) || {
		echo "no fuzz targets found" >&2
		return 1
	}
	return "$rc"
}

main() {
	local svc
	for svc in "${TEST_SERVICES[@]}"; do
		"start_$svc"
	done

	# The Redoc bundle is embedded by go build and served by the tests.
	step "API docs bundle (make docs)" build_docs
	step "go vet ./..." in_dir "$PAYGATE_ROOT" go vet ./...
	step "go vet ./... (tools)" in_dir "$PAYGATE_TOOLS" go vet ./...
	step "gofmt" gofmt_check
	step "goimports" goimports_check
	step "staticcheck ./..." staticcheck_check "$PAYGATE_ROOT"
	step "staticcheck ./... (tools)" staticcheck_check "$PAYGATE_TOOLS"
	step "go build ./..." in_dir "$PAYGATE_ROOT" go build -o /dev/null ./...
	step "go build ./... (tools)" in_dir "$PAYGATE_TOOLS" go build -o /dev/null ./...
	step "go test ./..." go_test "$PAYGATE_ROOT"
	step "go test ./... (tools)" go_test "$PAYGATE_TOOLS"
	step "fuzz (short)" fuzz_short
	step "otel collector config (validate)" validate_collector
	# Dockerfile, Helm chart, k8s/ and skaffold.yaml against a real
	# kube-apiserver (scripts/k8s-test.sh; builds its tools once into the cache).
	step "kubernetes delivery (make chart-test)" bash "$PAYGATE_ROOT/scripts/k8s-test.sh"

	if ((${#FAILED[@]})); then
		log "FAILED steps:"
		printf '      %s\n' "${FAILED[@]}" >&2
		exit 1
	fi
	log "all checks passed"
}

main "$@"
