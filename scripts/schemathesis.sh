#!/usr/bin/env bash
# Schemathesis against openapi.yaml and the real handlers: starts
# `partwise-local serve` (its own local stack, DEV MODE auth) on a free port,
# runs every operation with a bounded number of generated cases, and fails on
# any finding: a 5xx, a status, header, content type or body the spec does
# not allow, a schema-violating request accepted, a wrong answer to an
# undeclared method. Exceptions, each with its reason: scripts/schemathesis.toml.
#
#   scripts/schemathesis.sh
#   SCHEMATHESIS_EXAMPLES=50 SCHEMATHESIS_SEED=7 scripts/schemathesis.sh
#
# PARTWISE_LOCAL_BIN names the partwise-local binary (default: built here).
# About 2 minutes with 20 examples per operation on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh schemathesis
CACHE="${PARTWISE_CACHE:-$HOME/.cache/partwise}"
eval "$(grep -E '^SCHEMATHESIS_VERSION=' scripts/install-deps.sh)"
ST="$CACHE/venv-schemathesis-$SCHEMATHESIS_VERSION/bin/st"

bin="${PARTWISE_LOCAL_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -p partwise-local --locked
  bin="${CARGO_TARGET_DIR:-target}/debug/partwise-local"
fi
examples="${SCHEMATHESIS_EXAMPLES:-20}"
seed="${SCHEMATHESIS_SEED:-1}"

work=$(mktemp -d)
serve_pid=""
cleanup() {
  local status=$?
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$work/serve.log" ]; then
    # The log without the upload events serve prints one per line.
    echo "--- partwise-local serve log (last 40 lines, events left out) ---" >&2
    grep -v '^{"event"' "$work/serve.log" | tail -n 40 >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

RUST_LOG=warn "$bin" serve --port 0 --env-file "$work/serve.env" >"$work/serve.out" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 1 1200); do
  [ -f "$work/serve.env" ] && break
  if ! kill -0 "$serve_pid" 2>/dev/null; then
    echo "schemathesis.sh: partwise-local serve failed to start" >&2
    exit 1
  fi
  sleep 0.1
done
[ -f "$work/serve.env" ] || { echo "schemathesis.sh: serve not ready after 120 s" >&2; exit 1; }
api=$(sed -n "s/^export PARTWISE_API='\(.*\)'$/\1/p" "$work/serve.env")

# No telemetry, no update checks; a fixed seed, so a failure reproduces.
export SCHEMATHESIS_TELEMETRY=false
export SCHEMATHESIS_HOOKS=
echo "schemathesis.sh: $examples examples per operation, seed $seed, against $api"
timeout 600 "$ST" --config-file scripts/schemathesis.toml run openapi.yaml \
  --url "$api" \
  --header "Authorization: Bearer schemathesis" \
  --max-examples "$examples" \
  --seed "$seed" \
  --workers 2 \
  --request-timeout 30 \
  --no-color \
  --warnings off
echo "schemathesis.sh: no failures"
