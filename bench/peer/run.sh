#!/usr/bin/env bash
# Side-by-side benchmark: the product (idp) vs node oidc-provider 9.13.3, on 127.0.0.1 only.
# See README.md. Usage:
#   run.sh --product-venv VENV --product-root CHECKOUT --out RESULTS_DIR [--duration 10]
#          [--connections 32] [--rounds 3] [--warmup 2]
#          [--workloads discovery,jwks,token,userinfo,introspection,refresh,sso]
#          [--backends embedded,pg] [--peers peer1,peer2r]
# Writes nothing in its own folder: node install in ${TMPDIR:-/tmp}/bench-peer-node, scratch in
# a fresh ${TMPDIR:-/tmp}/bench-peer-run.XXXXXX (removed at the end), results in --out.
set -euo pipefail

# ---- product registration: edit here when the product CLI changes -------------------------
REDIRECT_URI="http://127.0.0.1:9/bench/callback"   # never contacted; the code is read from Location
BENCH_ALG="ES256"                                   # both sides sign ES256 (peer: ALG below)
# The cc client introspects the web client's tokens: since issue 7 only a resource server may.
CC_CLIENT_FLAGS=(--name "bench cc" --grant-type client_credentials --alg "$BENCH_ALG"
                 --resource-server)
# BENCH_WEB_ALG=RS256 measures the ID tokens of a client registered without --alg (issue 7).
WEB_CLIENT_FLAGS=(--name "bench web" --redirect-uri "$REDIRECT_URI" --trusted
                  --grant-type authorization_code --grant-type refresh_token
                  --alg "${BENCH_WEB_ALG:-$BENCH_ALG}")
BENCH_USER="benchuser"
BENCH_PASSWORD="amber harbour lantern 0001"
# The password goes to `idp users create --password-stdin` (the CLI refuses it on the
# command line since issue 7).
USER_FLAGS=(--username "$BENCH_USER" --password-stdin --email bench@example.org
            --name "Bench User")
PRODUCT_ENV=(                                 # applied to every product instance
  IDP_TOKENS__ACCESS_TOKEN_TTL=3600           # same lifetime as the peer's: tokens outlive the run
  IDP_THROTTLE__CODES_PER_SESSION=100000000   # the sso workload asks one session for many codes
)
PG_URL_BASE="postgresql+psycopg://postgres@127.0.0.1:5432"   # pg backend: a fresh DB per run
PSQL=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt -d postgres)
REDIS_DB="${BENCH_REDIS_DB:-13}"              # Redis db for product (pg) and peer2r keys
# -------------------------------------------------------------------------------------------

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMPROOT="${TMPDIR:-/tmp}"
NODE_DIR="$TMPROOT/bench-peer-node"
VENV="" ROOT="" OUT="" DURATION=10 CONNECTIONS=32 ROUNDS=3 WARMUP=2
WORKLOADS="discovery,jwks,token,userinfo,introspection,refresh,sso"
BACKENDS="embedded,pg" PEERS="peer1,peer2r"

die() { echo "run.sh: error: $*" >&2; exit 1; }
usage() { sed -n '3,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --product-venv) VENV="$2"; shift 2 ;;
    --product-root) ROOT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --workloads) WORKLOADS="$2"; shift 2 ;;
    --backends) BACKENDS="$2"; shift 2 ;;
    --peers) PEERS="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ -n "$VENV" && -n "$ROOT" && -n "$OUT" ]] || usage
[[ -x "$VENV/bin/idp" && -x "$VENV/bin/python" ]] || die "--product-venv: no bin/idp or bin/python in $VENV"
[[ -d "$ROOT" ]] || die "--product-root: $ROOT is not a folder"
for n in "$DURATION" "$CONNECTIONS" "$ROUNDS" "$WARMUP"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "numeric options must be whole numbers (got '$n')"
done
(( DURATION >= 1 && DURATION <= 300 )) || die "--duration must be 1..300 s"
(( ROUNDS >= 1 && CONNECTIONS >= 1 && WARMUP <= 60 )) || die "bad --rounds/--connections/--warmup"
for w in ${WORKLOADS//,/ }; do
  case "$w" in discovery|jwks|token|userinfo|introspection|refresh|sso) ;; *) die "unknown workload $w" ;; esac
done
for b in ${BACKENDS//,/ }; do case "$b" in embedded|pg) ;; *) die "unknown backend $b" ;; esac; done
for p in ${PEERS//,/ }; do case "$p" in peer1|peer2r) ;; *) die "unknown peer $p (peer1, peer2r)" ;; esac; done
VENV="$(cd "$VENV" && pwd)"; ROOT="$(cd "$ROOT" && pwd)"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
case "$OUT/" in "$HERE/"*) die "--out must be outside the harness folder" ;; esac
PY="$VENV/bin/python"; IDP="$VENV/bin/idp"
export PYTHONDONTWRITEBYTECODE=1

# ---- tools --------------------------------------------------------------------------------
for t in node npm curl; do command -v "$t" >/dev/null || die "missing tool: $t"; done
if ! command -v wrk >/dev/null; then
  echo "# wrk not found: apt-get install -y wrk" >&2
  { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; }; } \
    || die "cannot install wrk (apt-get install -y wrk as root, then rerun)"
fi
NEED_REDIS=0; [[ ",$PEERS," == *",peer2r,"* || ",$BACKENDS," == *",pg,"* ]] && NEED_REDIS=1
if (( NEED_REDIS )); then
  command -v redis-cli >/dev/null || die "missing redis-cli (peer2r and the pg backend need Redis on 127.0.0.1:6379)"
  [[ "$(redis-cli -h 127.0.0.1 -n "$REDIS_DB" ping 2>&1)" == PONG ]] || die "Redis not answering on 127.0.0.1:6379"
fi
if [[ ",$BACKENDS," == *",pg,"* ]]; then
  command -v psql >/dev/null || die "missing psql (the pg backend needs PostgreSQL on 127.0.0.1:5432, user postgres)"
  "${PSQL[@]}" -c "select 1" >/dev/null || die "PostgreSQL not reachable as postgres@127.0.0.1:5432"
fi

# ---- peer install (pinned) ----------------------------------------------------------------
installed_ver() { node -p "require('$NODE_DIR/node_modules/oidc-provider/package.json').version" 2>/dev/null || true; }
if [[ "$(installed_ver)" != "9.13.3" || ! -d "$NODE_DIR/node_modules/ioredis" ]] \
   || ! cmp -s "$HERE/package.json" "$NODE_DIR/package.json"; then
  echo "# installing the peer into $NODE_DIR (npm install)" >&2
  mkdir -p "$NODE_DIR"
  cp "$HERE/package.json" "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error >&2) || die "npm install failed in $NODE_DIR"
  [[ "$(installed_ver)" == "9.13.3" ]] || die "oidc-provider 9.13.3 not installed in $NODE_DIR"
fi
cp "$HERE/peer-server.mjs" "$NODE_DIR/peer-server.mjs"

# ---- scratch, PIDs, cleanup ---------------------------------------------------------------
SCRATCH="$(mktemp -d "$TMPROOT/bench-peer-run.XXXXXX")"
RUNID="bp$$$(date +%s)"
PREFIX="benchpeer:$RUNID:"
PIDS=()
DBS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local all=() p c
  for p in "${PIDS[@]}"; do   # the recorded PIDs and their children (cluster / gunicorn workers)
    all+=("$p")
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do all+=("$c"); done
  done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${all[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if (( NEED_REDIS )); then
    redis-cli -h 127.0.0.1 -n "$REDIS_DB" --scan --pattern "${PREFIX}*" \
      | xargs -r -n 500 redis-cli -h 127.0.0.1 -n "$REDIS_DB" DEL >/dev/null 2>&1 || true
  fi
  for d in "${DBS[@]}"; do "${PSQL[@]}" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  [[ -n "${SCRATCH:-}" && -d "$SCRATCH" ]] && rm -rf "$SCRATCH"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url pid name log
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null --max-time 2 "$1" && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited while starting; its log:
$(tail -20 "$4")"
    sleep 0.2
  done
  die "$3 did not answer $1 within 60 s; its log:
$(tail -20 "$4")"
}

# ---- peers --------------------------------------------------------------------------------
TARGETS=()   # JSON objects
for peer in ${PEERS//,/ }; do
  port=$(free_port)
  if [[ "$peer" == peer1 ]]; then workers=1 adapter=map; else workers=2 adapter=redis; fi
  (cd "$NODE_DIR" && NODE_ENV=production PORT=$port WORKERS=$workers ADAPTER=$adapter ALG="$BENCH_ALG" \
     REDIS_URL="redis://127.0.0.1:6379/$REDIS_DB" REDIS_PREFIX="${PREFIX}peer:" \
     exec node peer-server.mjs) >"$OUT/$peer.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/jwks" "$pid" "$peer" "$OUT/$peer.log"
  echo "# $peer up on 127.0.0.1:$port (pid $pid, $workers process(es), $adapter adapter)" >&2
  TARGETS+=("{\"name\":\"$peer\",\"kind\":\"peer\",\"base\":\"http://127.0.0.1:$port\",\"pids\":[$pid],\"workers\":$workers,\"cc\":[\"bench-client\",\"bench-secret\"],\"web\":[\"bench-web\",\"bench-web-secret\"]}")
done

# ---- product instances ---------------------------------------------------------------------
step() {  # description log command...
  local what="$1" logf="$2"; shift 2
  if ! "$@" >"$logf.out" 2>"$logf.err"; then
    die "$what failed: $*
$(tail -15 "$logf.err")
(if the product CLI changed, adjust the flags at the top of run.sh)"
  fi
}
for backend in ${BACKENDS//,/ }; do
  port=$(free_port)
  inst="$SCRATCH/product-$backend"
  mkdir -p "$inst"
  envs=("${PRODUCT_ENV[@]}" IDP_INSTANCE_PATH="$inst/instance" IDP_ISSUER="http://127.0.0.1:$port"
        IDP_STORE_PREFIX="${PREFIX}prod-$backend:")
  if [[ "$backend" == pg ]]; then
    db="benchpeer_${RUNID}"
    DBS+=("$db")
    "${PSQL[@]}" -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
    envs+=(IDP_DATABASE_URL="$PG_URL_BASE/$db" IDP_REDIS_URL="redis://127.0.0.1:6379/$REDIS_DB")
  fi
  log="$OUT/product-$backend"
  (cd "$ROOT" && step "idp db upgrade ($backend)" "$log.upgrade" env "${envs[@]}" "$IDP" db upgrade) || exit 1
  (cd "$ROOT" && step "idp users create ($backend)" "$log.user" env "${envs[@]}" "$IDP" users create "${USER_FLAGS[@]}" <<<"$BENCH_PASSWORD") || exit 1
  (cd "$ROOT" && step "idp clients create (client_credentials, $backend)" "$log.cc" env "${envs[@]}" "$IDP" clients create "${CC_CLIENT_FLAGS[@]}" --json) || exit 1
  (cd "$ROOT" && step "idp clients create (web, $backend)" "$log.web" env "${envs[@]}" "$IDP" clients create "${WEB_CLIENT_FLAGS[@]}" --json) || exit 1
  (cd "$ROOT" && exec env "${envs[@]}" "$IDP" serve --host 127.0.0.1 --port "$port") >"$log.serve.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/.well-known/openid-configuration" "$pid" "product ($backend)" "$log.serve.log"
  echo "# product ($backend) up on 127.0.0.1:$port (pid $pid)" >&2
  tj="$("$PY" - "$backend" "$port" "$pid" "$log.cc.out" "$log.web.out" "$BENCH_USER" "$BENCH_PASSWORD" "${envs[@]}" <<'PY'
import json, sys
backend, port, pid, ccf, webf, user, pw, *envs = sys.argv[1:]
def client(path):
    try:
        return json.loads(open(path).read().strip().splitlines()[-1])
    except Exception as exc:
        raise SystemExit(f"run.sh: error: cannot read the JSON of `idp clients create --json` in {path}: {exc}")
cc, web = client(ccf), client(webf)
for c in (cc, web):
    if not c.get("client_id") or not c.get("client_secret"):
        raise SystemExit(f"run.sh: error: client_id/client_secret missing in {c}")
    if c.get("id_token_signed_response_alg") not in (None, "ES256"):
        print(f"# warning: client {c['client_id']} signs {c['id_token_signed_response_alg']}", file=sys.stderr)
print(json.dumps({"name": f"prod-{backend}", "kind": "product", "backend": backend,
                  "base": f"http://127.0.0.1:{port}", "pids": [int(pid)],
                  "cc": [cc["client_id"], cc["client_secret"]],
                  "web": [web["client_id"], web["client_secret"]], "user": [user, pw],
                  "env": dict(e.split("=", 1) for e in envs)}))
PY
)" || die "reading the registered clients failed"
  TARGETS+=("$tj")
done

# ---- loads --------------------------------------------------------------------------------
(IFS=,; echo "[${TARGETS[*]}]") >"$SCRATCH/targets.json"
CONFIG="{\"product_commit\":\"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\",\"peer\":\"oidc-provider 9.13.3\",\"node\":\"$(node --version)\",\"started\":\"$(date -u +%FT%TZ)\"}"
echo "# $(uptime)" >&2
"$PY" "$HERE/bench.py" "$SCRATCH/targets.json" "$OUT" --workloads "$WORKLOADS" --rounds "$ROUNDS" \
  --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS" --scratch "$SCRATCH" \
  --config "$CONFIG" | tee "$OUT/table.txt"
echo "# results: $OUT/results.json" >&2
