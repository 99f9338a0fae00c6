#!/usr/bin/env bash
# Partwise on this machine, no AWS account needed: starts Garage (S3) and
# DynamoDB Local on free loopback ports, creates the bucket and table from
# template.yaml, and serves the HTTP API on http://127.0.0.1:3000 until Ctrl-C,
# with the upload page (web/) at http://127.0.0.1:3000/.
# It prints the stack's `export` lines (endpoints, region, local keys, bucket,
# table, API URL) and writes them to target/partwise-local.env, so another
# terminal can `source` them for cargo lambda, the sweep or the AWS SDKs.
#
#   scripts/dev.sh [--port P] [--anonymous] [--allowed-origins O1,O2] [--no-dev-auth] [--env-file F] [--web DIR]
#
# Its event log (stderr) has one JSON line per upload event the stack would
# publish (`{"event": …}`) and per S3 "Object Created" notification
# (`{"s3_notification": …}`), which a transport in front of Garage sends to the
# `settle` handler: POST forms and single PUTs are settled from them.
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
# The upload page (web/), built and served at the API's `/`. Without npm the
# API still runs; the page is static and can be built later and hosted anywhere.
case " $* " in
  *" --web "*) ;;
  *)
    if bash scripts/build-web.sh web/dist; then
      args+=(--web web/dist)
    else
      echo "dev.sh: the upload page was not built (see above); serving the API only" >&2
    fi
    ;;
esac
# PARTWISE_LOCAL_BIN: a partwise-local already built (scripts/test.sh passes
# the one it built with the workspace's features, so nothing compiles twice).
if [ -n "${PARTWISE_LOCAL_BIN:-}" ]; then
  exec "$PARTWISE_LOCAL_BIN" serve "${args[@]}"
fi
exec cargo run -p partwise-local -- serve "${args[@]}"
