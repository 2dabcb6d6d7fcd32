#!/usr/bin/env bash
# The quick tour of the API (`make tour`), against a running gateway
# (`make run` in another terminal): it registers two users, logs in, tops
# up (the top-up is pending, with payment instructions, until the payment
# provider confirms the payment; `make run`'s sandbox provider pays it by
# itself within a second or two), replays the top-up with the same
# Idempotency-Key, waits until the top-up succeeded, transfers, tries a
# transfer the wallet cannot pay, withdraws, reads the saldo, the
# statement and the withdrawal, and finds the emails in the local SMTP
# inbox. Each step prints the request and the response; an unexpected
# status (or missing mail) stops the tour with exit status 1.
#
# Settings (environment):
#   TOUR_BASE_URL      the gateway (default http://127.0.0.1:8080)
#   TOUR_MAIL_URL      the inbox's HTTP API, mailpit's (default http://127.0.0.1:8025)
#   TOUR_SKIP_MAIL=1   skip the mail step (a gateway running without the email consumer)
#   TOUR_MAIL_TIMEOUT  seconds to wait for the mails (default 60)
#   TOUR_TOPUP_TIMEOUT seconds to wait for the top-up's payment (default 15)
#   TOUR_SETTLE_TIMEOUT seconds to wait for the payout to settle the withdrawal (default 15)
#
# Needs curl and jq (installed from Debian when missing and running as root).
# `make test` runs this script against a test gateway (internal/apidocs
# TestTourScript), through a proxy that validates every exchange against
# api/openapi.yaml.

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE="${TOUR_BASE_URL:-http://127.0.0.1:8080}"
BASE="${BASE%/}"
MAIL="${TOUR_MAIL_URL:-http://127.0.0.1:8025}"
MAIL="${MAIL%/}"

ensure_apt_tool curl curl
ensure_apt_tool jq jq

WORK="$(mktemp -d "${TMPDIR:-/tmp}/paygate-tour.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Colours only on a terminal.
if [[ -t 1 ]]; then
	BOLD=$'\033[1m' CYAN=$'\033[36m' RED=$'\033[31m' GREEN=$'\033[32m' RESET=$'\033[0m' JQ=(jq -C)
else
	BOLD="" CYAN="" RED="" GREEN="" RESET="" JQ=(jq -M)
fi

STEP=0
step() {
	STEP=$((STEP + 1))
	printf '\n%s%d. %s%s\n' "$BOLD" "$STEP" "$*" "$RESET"
}

fail() {
	printf '%stour failed: %s%s\n' "$RED" "$*" "$RESET" >&2
	exit 1
}

new_key() { cat /proc/sys/kernel/random/uuid; }

# call EXPECTED METHOD PATH [BODY] [HEADER...]: sends the request with the
# current TOKEN (if any), prints it and the response, and fails unless the
# status is EXPECTED. The body is left in $WORK/body, the headers in
# $WORK/headers.
TOKEN=""
call() {
	local want="$1" method="$2" path="$3" body="${4:-}"
	shift 4 || shift $#
	local args=(-sS -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}')
	[[ -n "$TOKEN" ]] && args+=(-H "Authorization: Bearer $TOKEN")
	[[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	local h
	for h in "$@"; do
		args+=(-H "$h")
	done
	printf '   %s%s %s%s' "$CYAN" "$method" "$path" "$RESET"
	for h in "$@"; do
		printf '  [%s]' "$h"
	done
	echo
	[[ -n "$body" ]] && "${JQ[@]}" . <<<"$body" | sed 's/^/   /'
	local status
	status="$(curl "${args[@]}" "$BASE$path")" || fail "$method $path: curl failed (is the gateway running at $BASE? start it with make run)"
	printf '   -> %s' "$status"
	local replayed
	replayed="$(tr -d '\r' <"$WORK/headers" | awk -F': ' 'tolower($1) == "idempotent-replayed" { print $2 }')"
	[[ -n "$replayed" ]] && printf '  (Idempotent-Replayed: %s)' "$replayed"
	echo
	if [[ -s "$WORK/body" ]]; then
		"${JQ[@]}" . "$WORK/body" 2>/dev/null | sed 's/^/   /' || sed 's/^/   /' "$WORK/body"
	fi
	[[ "$status" == "$want" ]] || fail "$method $path answered $status, expected $want"
}

# field NAME: a member of the last response body.
field() { jq -er ".$1" "$WORK/body" || fail "the response has no $1"; }

run_id="$(date +%s)-$RANDOM"
alice="alice-$run_id@example.com"
bob="bob-$run_id@example.com"
password="correct-horse-battery"

step "The gateway is alive"
call 200 GET /healthz

step "Register Alice (public)"
call 201 POST /v1/auth/register "$(jq -nc --arg e "$alice" --arg p "$password" \
	'{firstname: "Alice", lastname: "Tour", email: $e, password: $p, confirm_password: $p}')"
alice_account="$(field account_number)"

step "Register Bob"
call 201 POST /v1/auth/register "$(jq -nc --arg e "$bob" --arg p "$password" \
	'{firstname: "Bob", lastname: "Tour", email: $e, password: $p, confirm_password: $p}')"
bob_account="$(field account_number)"

step "Log in as Alice: an access token and a refresh token"
call 200 POST /v1/auth/login "$(jq -nc --arg e "$alice" --arg p "$password" '{email: $e, password: $p}')"
TOKEN="$(field access_token)"

step "Top up 500000 IDR with OVO (money POSTs need an Idempotency-Key): pending, with payment instructions"
topup_key="$(new_key)"
topup_body='{"amount": 500000, "method": "ovo", "reference": "tour"}'
call 201 POST /v1/topups "$topup_body" "Idempotency-Key: $topup_key"
topup_id="$(field id)"
[[ "$(field status)" == pending ]] || fail "a new top-up is pending until the provider confirms its payment"
echo "   pay before $(field expires_at) with: $(jq -c .payment "$WORK/body")"

step "Retry the same top-up with the same key: the stored response, no second top-up"
call 201 POST /v1/topups "$topup_body" "Idempotency-Key: $topup_key"
[[ "$(field id)" == "$topup_id" ]] || fail "the retry booked another top-up"

step "The top-up, once paid: the provider's callback credits the wallet"
deadline=$((SECONDS + ${TOUR_TOPUP_TIMEOUT:-15}))
while :; do
	call 200 GET "/v1/topups/$topup_id" >"$WORK/poll"
	status="$(field status)"
	if [[ "$status" != pending ]] || ((SECONDS >= deadline)); then
		cat "$WORK/poll"
		break
	fi
	sleep 1
done
[[ "$status" == succeeded ]] ||
	fail "the top-up is $status after ${TOUR_TOPUP_TIMEOUT:-15}s, expected succeeded (make run's sandbox pays by itself; else pay it: paygate sandbox pay $topup_id)"

step "Transfer 150000 IDR to Bob's account $bob_account"
call 201 POST /v1/transfers "$(jq -nc --arg to "$bob_account" '{to: $to, amount: 150000, note: "lunch"}')" "Idempotency-Key: $(new_key)"

step "A transfer the wallet cannot pay: 422 INSUFFICIENT_FUNDS, as application/problem+json"
call 422 POST /v1/transfers "$(jq -nc --arg to "$bob" '{to: $to, amount: 9000000}')" "Idempotency-Key: $(new_key)"
[[ "$(field code)" == "INSUFFICIENT_FUNDS" ]] || fail "expected the code INSUFFICIENT_FUNDS"

step "Withdraw 100000 IDR to a bank account: pending until the payout processor settles it"
call 201 POST /v1/withdrawals '{"amount": 100000, "bank_code": "BCA", "bank_account_number": "1234567890", "bank_account_name": "Alice Tour"}' \
	"Idempotency-Key: $(new_key)"
withdrawal_id="$(field id)"

step "Alice's saldo: available = balance - held"
call 200 GET /v1/saldo
[[ "$(field account_number)" == "$alice_account" ]] || fail "the saldo is not Alice's"
jq -e '.available == .balance - .held and .available == 250000' "$WORK/body" >/dev/null ||
	fail "expected 250000 IDR available after +500000, -150000 and a 100000 withdrawal"

step "Alice's statement, newest first"
call 200 GET '/v1/saldo/statement?limit=10'

step "The withdrawal, once settled"
deadline=$((SECONDS + ${TOUR_SETTLE_TIMEOUT:-15}))
while :; do
	call 200 GET "/v1/withdrawals/$withdrawal_id" >"$WORK/poll"
	status="$(field status)"
	if [[ "$status" != pending ]] || ((SECONDS >= deadline)); then
		cat "$WORK/poll"
		break
	fi
	sleep 1
done
[[ "$status" == pending ]] && echo "   (still pending: is the payout processor running? PAYGATE_PAYOUT_ENABLED)"

step "Emails to Alice in the SMTP inbox ($MAIL/api/v1/messages)"
if [[ "${TOUR_SKIP_MAIL:-}" == 1 ]]; then
	echo "   skipped (TOUR_SKIP_MAIL=1)"
else
	# Welcome, top-up, transfer sent and withdrawal requested: four mails
	# at least (a fifth when the withdrawal settled).
	deadline=$((SECONDS + ${TOUR_MAIL_TIMEOUT:-60}))
	while :; do
		curl -sSf "$MAIL/api/v1/messages?limit=500" -o "$WORK/mail" ||
			fail "the inbox API at $MAIL does not answer (make run starts mailpit; set TOUR_MAIL_URL or TOUR_SKIP_MAIL=1)"
		n="$(jq --arg a "$alice" '[.messages[] | select(any(.To[]; (.Address | ascii_downcase) == $a))] | length' "$WORK/mail")"
		((n >= 4)) && break
		((SECONDS < deadline)) || fail "$n mails to $alice after ${TOUR_MAIL_TIMEOUT:-60}s, expected at least 4"
		sleep 1
	done
	jq -r --arg a "$alice" '.messages[] | select(any(.To[]; (.Address | ascii_downcase) == $a)) | "   \(.Subject)"' "$WORK/mail"
fi

printf '\n%stour complete%s: API reference at %s/docs, OpenAPI document at %s/openapi.yaml\n' "$GREEN" "$RESET" "$BASE" "$BASE"
