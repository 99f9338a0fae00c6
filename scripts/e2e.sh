#!/usr/bin/env bash
# Browser end-to-end test: the real Uppy (@uppy/core + @uppy/aws-s3, pointed
# at the API as its `companionEndpoint`) uploads through Partwise in headless
# Chromium, from a page on another origin, and every case is checked against
# what Garage really holds. See e2e/README.md.
#
#   scripts/e2e.sh
#
# 1. installs what is missing: Garage and DynamoDB Local (scripts/install-deps.sh),
#    Debian's chromium, and the npm packages of e2e/ and web/ (scripts/npm-cached.sh);
# 2. builds the page (esbuild) and partwise-local (or takes $PARTWISE_LOCAL_BIN);
# 3. starts `partwise-local serve --anonymous` on a free port (its own stack),
#    or uses the API at $E2E_API if set;
# 4. runs e2e/*.test.mjs (node --test), one line per case;
# 5. stops everything it started, however it ends. Exit status 0 only if all passed.
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM="${E2E_CHROMIUM:-/usr/bin/chromium}"
started=$SECONDS
log() { echo "e2e: $*" >&2; }

work=$(mktemp -d)
api_pid=""
tests_pid=""
cleanup() {
  local status=$?
  if [ -n "$tests_pid" ] && kill -0 "$tests_pid" 2>/dev/null; then
    kill -TERM -- "-$tests_pid" 2>/dev/null || true
    wait "$tests_pid" 2>/dev/null || true
  fi
  if [ -n "$api_pid" ] && kill -0 "$api_pid" 2>/dev/null; then
    kill -TERM "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$work/api.log" ]; then
    echo "--- partwise-local serve log (last 40 lines) ---" >&2
    tail -n 40 "$work/api.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. what is missing ---------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
  log "installing Debian's chromium"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "$CHROMIUM is missing and we are not root: apt-get install chromium"; exit 1; }
    sudo=(sudo -n)
  fi
  if ! { "${sudo[@]}" apt-get update -qq &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$work/apt.log" 2>&1; then
    cat "$work/apt.log" >&2
    log "could not install chromium"
    exit 1
  fi
fi
command -v node >/dev/null || { log "node is missing"; exit 1; }

bash scripts/npm-cached.sh e2e

# --- 2. build --------------------------------------------------------------
mkdir -p "$work/site"
cp e2e/page/index.html "$work/site/"
e2e/node_modules/.bin/esbuild e2e/page/main.js --bundle --format=esm --target=chrome120 \
  --log-level=warning --outfile="$work/site/main.js"
bash scripts/build-web.sh "$work/web"
# Screenshots of the upload page (before, during, after an upload).
artifacts="${E2E_ARTIFACTS:-target/e2e-artifacts}"
mkdir -p "$artifacts"

if [ -z "${E2E_API:-}" ]; then
  bash scripts/install-deps.sh garage dynamodb
  bin="${PARTWISE_LOCAL_BIN:-}"
  if [ -z "$bin" ]; then
    cargo build -p partwise-local --bin partwise-local
    bin="${CARGO_TARGET_DIR:-target}/debug/partwise-local"
  fi

  # --- 3. the API and its stack ----------------------------------------------
  # A live-uploads quota small enough for e2e/page-errors.test.mjs to reach
  # (by bounded creates) and far above what the other cases hold at once.
  # Port 0: the server binds a free port itself and prints it, so no race.
  # A grant signing key of its own, for e2e/grants.test.mjs.
  # Created before the server starts: the loop below may read it first.
  : >"$work/api.out"
  PARTWISE_GRANT_KEYS="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
    PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER="${PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER:-40}" \
    "$bin" serve --anonymous --no-dev-auth --port 0 >"$work/api.out" 2>"$work/api.log" &
  api_pid=$!
  for _ in $(seq 1 1200); do
    E2E_API=$(sed -n 's|^Partwise API: \(http://[^ ]*\)$|\1|p' "$work/api.out")
    [ -n "$E2E_API" ] && break
    if ! kill -0 "$api_pid" 2>/dev/null; then
      log "partwise-local serve failed to start"
      exit 1
    fi
    sleep 0.1
  done
  [ -n "$E2E_API" ] || { log "partwise-local serve was not ready after 120 s"; exit 1; }
fi
log "API at $E2E_API (ready after $((SECONDS - started)) s)"

# --- 4. the browser tests --------------------------------------------------
# In its own process group, waited for in the background, so a signal to this
# script is handled at once and the cleanup stops the tests (and, through
# Playwright's own SIGTERM handling, Chromium) too. The TAP copy is for the tally.
E2E_EVENTS="${E2E_EVENTS:-$work/api.log}" E2E_API="$E2E_API" E2E_SITE="$work/site" E2E_WEB="$work/web" E2E_ARTIFACTS="$artifacts" E2E_CHROMIUM="$CHROMIUM" \
  setsid --wait node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$work/test.tap" \
  e2e/*.test.mjs &
tests_pid=$!
status=0
wait "$tests_pid" || status=$?
tests_pid=""
count() { [ -f "$work/test.tap" ] || return 0; sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$work/test.tap" | tail -n 1; }
passed=$(count pass)
failed=$(count fail)
cancelled=$(count cancelled)
failed=$(( ${failed:-0} + ${cancelled:-0} ))
if [ "$status" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then
  log "no test ran"
  status=1
fi
log "page screenshots in $artifacts"
log "done in $((SECONDS - started)) s"
echo "e2e: ${passed:-0} passed, $failed failed"
exit "$status"
