#!/usr/bin/env bash
# Partwise on this machine, no AWS account needed: starts Garage (S3) and
# DynamoDB Local on free loopback ports, creates the bucket and table from
# template.yaml, and serves the HTTP API on http://127.0.0.1:3000 until Ctrl-C.
# It prints the stack's `export` lines (endpoints, region, local keys, bucket,
# table, API URL) and writes them to target/partwise-local.env, so another
# terminal can `source` them for cargo lambda, the sweep or the AWS SDKs.
#
#   scripts/dev.sh [--port P] [--anonymous] [--no-dev-auth] [--env-file F]
#
# DEV MODE auth is on by default: `Authorization: Bearer <token>` is trusted
# WITHOUT verification (a JWT's claims, or the token itself as the caller).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh garage dynamodb
args=("$@")
case " $* " in
  *" --env-file "*) ;;
  *) mkdir -p target && args+=(--env-file target/partwise-local.env) ;;
esac
# Upload grants (POST /grants) need a signing key: a fresh one each run,
# unless one is given ("current[,previous]", 32 bytes or more each).
if [ -z "${PARTWISE_GRANT_KEYS:-}" ]; then
  PARTWISE_GRANT_KEYS="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  export PARTWISE_GRANT_KEYS
fi
# The upload page (web/) is static: build it once and serve it anywhere.
echo "Upload page: (cd web && npm ci && npm run build) && python3 -m http.server -b 127.0.0.1 -d web/dist 8080" >&2
echo "  then open http://127.0.0.1:8080/?api=http://127.0.0.1:<API port, 3000 by default>" >&2
# PARTWISE_LOCAL_BIN: a partwise-local already built (scripts/test.sh passes
# the one it built with the workspace's features, so nothing compiles twice).
if [ -n "${PARTWISE_LOCAL_BIN:-}" ]; then
  exec "$PARTWISE_LOCAL_BIN" serve "${args[@]}"
fi
exec cargo run -p partwise-local -- serve "${args[@]}"
