#!/usr/bin/env bash
# Regenerates the configuration table of README.md between its
# "config:begin" and "config:end" markers from `paygate config -markdown`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
table="$(mktemp)"
trap 'rm -f "$table"' EXIT
go run ./cmd/paygate config -markdown >"$table"
awk -v table="$table" '
	/<!-- config:begin/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
	/<!-- config:end -->/ { skip = 0 }
	!skip { print }
' README.md >README.md.tmp
mv README.md.tmp README.md
