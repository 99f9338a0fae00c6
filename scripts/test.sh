#!/usr/bin/env bash
# Everything CI checks, against a real local stack (Garage + DynamoDB Local):
#   1. install what is missing (cached under $PARTWISE_CACHE);
#   2. formatting and lints (cargo fmt --check, clippy -D warnings);
#   3. compile every target;
#   4. start one local stack for the whole run (`partwise-local stack`);
#   5. run every test of the workspace with the stack's variables exported;
#   6. docs/sweep.md's by-hand sweep sequence, checked (scripts/sweep-by-hand.sh);
#      Uppy in a real browser against the local API (scripts/e2e.sh);
#      Schemathesis against openapi.yaml and the local API (scripts/schemathesis.sh);
#      the runbook's redrive and query, run as written (scripts/runbook-check.sh);
#   7. every Markdown link and anchor (scripts/check-links.py, offline);
#      template.yaml and openapi.yaml checks (scripts/checks.sh).
# The stack is stopped however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# Compile everything first (this also builds the partwise-local binary, with
# the workspace's unified features, so nothing is compiled twice), and before
# the stack runs, so a compile error fails fast with nothing to clean up.
cargo test --workspace --all-targets --no-run
bin="${CARGO_TARGET_DIR:-target}/debug/partwise-local"

work=$(mktemp -d)
stack_pid=""
cleanup() {
  local status=$?
  if [ -n "$stack_pid" ] && kill -0 "$stack_pid" 2>/dev/null; then
    kill -TERM "$stack_pid" 2>/dev/null || true
    wait "$stack_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$work/stack.log" ]; then
    echo "--- local stack log (last 40 lines) ---" >&2
    tail -n 40 "$work/stack.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$bin" stack --env-file "$work/stack.env" >"$work/stack.out" 2>"$work/stack.log" &
stack_pid=$!
# The env file appears (whole) once the stack is ready; bounded wait.
for _ in $(seq 1 1200); do
  [ -f "$work/stack.env" ] && break
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    echo "test.sh: the local stack failed to start" >&2
    exit 1
  fi
  sleep 0.1
done
if [ ! -f "$work/stack.env" ]; then
  echo "test.sh: the local stack was not ready after 120 s" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$work/stack.env"

cargo test --workspace --all-targets

PARTWISE_LOCAL_BIN="$bin" bash scripts/sweep-by-hand.sh
PARTWISE_LOCAL_BIN="$bin" bash scripts/e2e.sh
PARTWISE_LOCAL_BIN="$bin" bash scripts/schemathesis.sh
bash scripts/runbook-check.sh
python3 scripts/check-links.py --self-test && python3 scripts/check-links.py
bash scripts/checks.sh
echo "test.sh: all tests and checks passed"
