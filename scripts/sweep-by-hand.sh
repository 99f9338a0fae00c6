#!/usr/bin/env bash
# docs/sweep.md's "sweep the local stack by hand" sequence, run as written (free
# ports aside) and checked: scripts/dev.sh, a backlog of stale tracked and
# orphan uploads spanning several ListMultipartUploads pages, then
# `cargo lambda invoke sweep` until a summary says no more work. Every
# summary's `remaining_*` counts must match what S3 and the table hold
# afterwards, and the work must take exactly the invocations the summaries said.
#
#   scripts/sweep-by-hand.sh        (scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${PARTWISE_CACHE:-$HOME/.cache/partwise}"
TRACKED=200
ORPHANS=2600            # ListMultipartUploads pages at 1,000: three pages
LIMIT=1000
EXPECTED_RUNS=3         # 2,800 stale uploads, 1,000 a run
log() { echo "sweep-by-hand: $*" >&2; }

# cargo-lambda comes with the SAM CLI's venv (scripts/install-deps.sh tools).
cl_venv=$(ls -d "$CACHE"/venv-sam-*-cl-*/ 2>/dev/null | head -n 1)
[ -n "$cl_venv" ] && [ -x "$cl_venv/bin/cargo-lambda" ] || { log "cargo-lambda is missing: run scripts/install-deps.sh tools"; exit 1; }
export PATH="$cl_venv/bin:$PATH"

work=$(mktemp -d)
dev_pid=""; watch_pid=""
cleanup() {
  local status=$?
  for pid in "$watch_pid" "$dev_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" -ne 0 ]; then
    for f in dev.log watch.log; do
      [ -s "$work/$f" ] && { echo "--- $f (last 30 lines) ---" >&2; tail -n 30 "$work/$f" >&2; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# 1. docs/sweep.md: `scripts/dev.sh` (here on a free port, with its own env file).
setsid bash scripts/dev.sh --port 0 --env-file "$work/local.env" >"$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 3000); do
  [ -f "$work/local.env" ] && break
  kill -0 "$dev_pid" 2>/dev/null || { log "scripts/dev.sh exited early"; exit 1; }
  sleep 0.1
done
[ -f "$work/local.env" ] || { log "scripts/dev.sh was not ready after 300 s"; exit 1; }

# 2. docs/sweep.md: source the variables dev.sh printed, seed a stale backlog.
# shellcheck disable=SC1091
source "$work/local.env"
local_bin="${PARTWISE_LOCAL_BIN:-${CARGO_TARGET_DIR:-target}/debug/partwise-local}"
"$local_bin" seed --tracked "$TRACKED" --orphans "$ORPHANS" >/dev/null
start=$("$local_bin" census)
log "seeded: $start"

# 3. docs/sweep.md: cargo lambda watch, then cargo lambda invoke sweep, repeated
#    while the summary says more_work.
port=$(free_port)
setsid cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$port" >"$work/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$watch_pid" 2>/dev/null || { log "cargo lambda watch exited early"; exit 1; }
  sleep 0.1
done
runs=0; aborted=0
while :; do
  runs=$((runs + 1))
  if [ "$runs" -gt $((EXPECTED_RUNS + 2)) ]; then log "still more work after $runs runs"; exit 1; fi
  summary=$(cargo lambda invoke sweep --invoke-address 127.0.0.1 --invoke-port "$port" \
    --data-ascii "{\"max_age_secs\": 0, \"limit\": $LIMIT}" --output-format json)
  census=$("$local_bin" census)
  read -r more done_now < <(python3 - "$summary" "$census" <<'PY'
import json, sys
s, c = json.loads(sys.argv[1]), json.loads(sys.argv[2])
checks = [
    ("remaining_uploads == S3's multipart uploads", s["remaining_uploads"] == c["s3_uploads"]),
    ("remaining_tracked == the table's live items", s["remaining_tracked"] == c["live_items"]),
    ("remaining_exact", s["remaining_exact"] is True),
    ("no failures", s["failed"] == 0 and s["listing_failures"] == 0),
    ("more_work == anything remains", s["more_work"] == (c["s3_uploads"] + c["live_items"] > 0)),
]
bad = [name for name, ok in checks if not ok]
if bad:
    sys.exit(f"summary and stack disagree ({', '.join(bad)}):\n summary {s}\n census {c}")
print(str(s["more_work"]).lower(), s["aborted"] + s["orphans_aborted"] + s["already_gone"])
PY
)
  aborted=$((aborted + done_now))
  log "run $runs: aborted $done_now, S3 and table now $census, more_work $more"
  [ "$more" = true ] || break
done
[ "$runs" -eq "$EXPECTED_RUNS" ] || { log "took $runs runs, expected $EXPECTED_RUNS"; exit 1; }
[ "$aborted" -eq $((TRACKED + ORPHANS)) ] || { log "aborted $aborted, seeded $((TRACKED + ORPHANS))"; exit 1; }
log "ok: $aborted stale uploads in $runs invocations, as the summaries said"
