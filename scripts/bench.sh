#!/usr/bin/env bash
# The sweep benchmark (bench/): aborts per second and peak memory of the sweep
# beside the SDKs' algorithm and raw S3 capacity, on a fresh local stack.
# Not a test: it prints figures and exits non-zero only if a target is missed
# or a run leaves uploads behind.
#
#   scripts/bench.sh [--n 1000,10000] [--delay-ms 20] [--tracked-percent 80] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh garage dynamodb
exec cargo run --profile bench -p partwise-bench -- "$@"
