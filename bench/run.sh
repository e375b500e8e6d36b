#!/usr/bin/env bash
# Benchmark a fresh provider instance end to end:
#   1. a temporary instance folder (IDP_INSTANCE_PATH): SQLite database,
#      generated secrets and, unless IDP_REDIS_URL is set, the embedded store;
#   2. registers a client_credentials client, a confidential trusted web client
#      and a test account with the `idp` CLI;
#   3. starts `idp serve` (granian, workers/threads from config [server]);
#   4. waits for discovery, runs bench/bench.py (or, with BENCH=login,
#      bench/login.py: password logins against argon2id), stops the server.
#
# Usage: bash bench/run.sh [bench.py options, e.g. --seconds 10 --concurrency 8]
#        BENCH=login bash bench/run.sh [login.py options, e.g. --seconds 5]
# Environment: PORT (default 5099), VENV (default .venv), WORKERS / THREADS
# (override config [server]), IDP_REDIS_URL (Redis store instead of the
# embedded one), KEEP_INSTANCE=1 (keep the temp folder and server log),
# BENCH (bench or login), ACCOUNTS (test accounts: USERNAME, USERNAME-2...;
# default 1; 8 for BENCH=login, one for each of its default 8 client threads).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
BENCH=${BENCH:-bench}
case "$BENCH" in
    bench) ACCOUNTS=${ACCOUNTS:-1} ;;
    login) ACCOUNTS=${ACCOUNTS:-8} ;;
    *) echo "BENCH must be bench or login" >&2; exit 2 ;;
esac
PORT=${PORT:-5099}
IDP="$VENV/bin/idp"
PYTHON="$VENV/bin/python"
URL="http://127.0.0.1:$PORT"
REDIRECT_URI="http://127.0.0.1:9/bench/callback"
USERNAME="bench$(date +%s)"
PASSWORD="bench-$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(12))')"

INSTANCE=$(mktemp -d "${TMPDIR:-/tmp}/idp-bench.XXXXXX")
export IDP_INSTANCE_PATH="$INSTANCE"
export IDP_ISSUER="$URL"
export IDP_STORE_PREFIX="idpbench:$$:$(date +%s):"  # isolates a shared Redis
SERVER_PID=""

cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "${IDP_REDIS_URL:-}" ]]; then  # drop this run's keys (only its own prefix)
        "$PYTHON" - "$IDP_REDIS_URL" "$IDP_STORE_PREFIX" <<'PY' || true
import sys

import redis

client = redis.Redis.from_url(sys.argv[1])
keys = list(client.scan_iter(match=sys.argv[2] + "*", count=1000))
if keys:
    client.delete(*keys)
PY
    fi
    if [[ "${KEEP_INSTANCE:-}" == 1 || $status -ne 0 ]]; then
        echo "# instance kept in $INSTANCE (server log: $INSTANCE/server.log)" >&2
    else
        rm -rf "$INSTANCE"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if curl -s -o /dev/null --max-time 2 "$URL/" 2>/dev/null; then
    echo "port $PORT is already in use; set PORT=..." >&2
    exit 1
fi

json_field() { "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

echo "# instance $INSTANCE, issuer $IDP_ISSUER, store ${IDP_REDIS_URL:-embedded (SQLite)}" >&2
CC_JSON=$("$IDP" clients create --name "bench client_credentials" \
    --grant-type client_credentials --json)
WEB_JSON=$("$IDP" clients create --name "bench web" --redirect-uri "$REDIRECT_URI" \
    --trusted --grant-type authorization_code --json)
for i in $(seq 1 "$ACCOUNTS"); do
    NAME=$USERNAME
    [[ $i -gt 1 ]] && NAME="$USERNAME-$i"
    printf '%s\n' "$PASSWORD" | "$IDP" users create --username "$NAME" --password-stdin >/dev/null
done

# The authorize scenario asks one SSO session for thousands of codes a
# minute; the per-session limit (60 a minute) would answer most with 503.
export IDP_THROTTLE__CODES_PER_SESSION=100000000
SERVE_ARGS=(--port "$PORT")
[[ -n "${WORKERS:-}" ]] && SERVE_ARGS+=(--workers "$WORKERS")
[[ -n "${THREADS:-}" ]] && SERVE_ARGS+=(--threads "$THREADS")
"$IDP" serve "${SERVE_ARGS[@]}" >"$INSTANCE/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
    if curl -sf -o /dev/null --max-time 2 "$URL/.well-known/openid-configuration"; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the server exited; log:" >&2
        cat "$INSTANCE/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
curl -sf -o /dev/null "$URL/.well-known/openid-configuration" || {
    echo "no discovery document at $URL after 20 s" >&2
    exit 1
}
echo "# server pid $SERVER_PID (workers=${WORKERS:-config} threads=${THREADS:-config})" >&2

if [[ "$BENCH" == login ]]; then
    LOGIN_ARGS=(--url="$URL" --username="$USERNAME" --password="$PASSWORD"
                --accounts="$ACCOUNTS" --server-pid="$SERVER_PID")
    [[ -n "${WORKERS:-}" ]] && LOGIN_ARGS+=(--workers "$WORKERS")
    [[ -n "${THREADS:-}" ]] && LOGIN_ARGS+=(--threads "$THREADS")
    "$PYTHON" "$ROOT/bench/login.py" "${LOGIN_ARGS[@]}" "$@"
    exit
fi

# --opt=value: generated ids and secrets may begin with "-".
"$PYTHON" "$ROOT/bench/bench.py" --url="$URL" \
    --client-id="$(json_field client_id <<<"$CC_JSON")" \
    --client-secret="$(json_field client_secret <<<"$CC_JSON")" \
    --web-client-id="$(json_field client_id <<<"$WEB_JSON")" \
    --web-client-secret="$(json_field client_secret <<<"$WEB_JSON")" \
    --redirect-uri="$REDIRECT_URI" --username="$USERNAME" --password="$PASSWORD" \
    "$@"
