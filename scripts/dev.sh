#!/usr/bin/env bash
# Partwise on this machine, no AWS account needed: starts Garage (S3) and
# DynamoDB Local on free loopback ports, creates the bucket and table from
# template.yaml, and serves the HTTP API on http://127.0.0.1:3000 until Ctrl-C.
#
#   scripts/dev.sh [--port P] [--anonymous] [--no-dev-auth]
#
# DEV MODE auth is on by default: `Authorization: Bearer <token>` is trusted
# WITHOUT verification (a JWT's claims, or the token itself as the caller).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh garage dynamodb
exec cargo run -p partwise-local -- serve "$@"
