#!/usr/bin/env bash
# Installs what the local stack and the checks need, cached outside the clone
# under $PARTWISE_CACHE (default ~/.cache/partwise), one folder per version so
# CI and later sessions reuse it. Prints nothing but progress; idempotent.
#
#   scripts/install-deps.sh [garage] [dynamodb] [tools] [awscli] [schemathesis]
#   (default: the first three; awscli only for scripts/bench-cli.sh;
#   schemathesis only for scripts/schemathesis.sh)
set -euo pipefail

CACHE="${PARTWISE_CACHE:-$HOME/.cache/partwise}"
GARAGE_VERSION=2.5.0
DDB_SIM_VERSION=2.9.30
CARGO_LAMBDA_VERSION=1.9.2
SAM_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
CFN_LINT_SERVERLESS_VERSION=0.3.6
CHECKOV_VERSION=3.3.30
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
AWSCLI_VERSION=1.46.2
SCHEMATHESIS_VERSION=4.32.5

mkdir -p "$CACHE"
log() { echo "install-deps: $*" >&2; }

install_garage() {
  local root="$CACHE/garage-$GARAGE_VERSION"
  if [ -x "$root/bin/garage" ]; then return; fi
  log "building garage $GARAGE_VERSION (about 10 minutes, once)"
  # Build in a private target dir so a half-finished build is never taken for done.
  cargo install garage --version "$GARAGE_VERSION" --locked --root "$root.tmp" \
    --target-dir "$CACHE/garage-build" >&2
  rm -rf "$root" && mv "$root.tmp" "$root"
  rm -rf "$CACHE/garage-build"
}

install_dynamodb() {
  local dir="$CACHE/dynamodb-local-$DDB_SIM_VERSION"
  if [ -f "$dir/DynamoDBLocal.jar" ]; then return; fi
  log "fetching DynamoDB Local from amplify-dynamodb-simulator@$DDB_SIM_VERSION"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "amplify-dynamodb-simulator@$DDB_SIM_VERSION" >/dev/null 2>&1 \
    && tar xzf amplify-dynamodb-simulator-*.tgz)
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  cp -r "$tmp/package/emulator/." "$dir.tmp/"
  rm -rf "$tmp" "$dir" && mv "$dir.tmp" "$dir"
}

# One venv per tool family: aws-sam-cli and checkov pin incompatible dependencies.
venv() {
  local name=$1; shift
  local dir="$CACHE/venv-$name"
  if [ -f "$dir/.done" ]; then return; fi
  log "pip installing $* into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
  touch "$dir/.done"
}

install_tools() {
  venv "sam-$SAM_VERSION-cl-$CARGO_LAMBDA_VERSION" "aws-sam-cli==$SAM_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
  venv "cfnlint-$CFN_LINT_VERSION-$CFN_LINT_SERVERLESS_VERSION" "cfn-lint==$CFN_LINT_VERSION" "cfn-lint-serverless==$CFN_LINT_SERVERLESS_VERSION"
  venv "checkov-$CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"
  venv "openapi-$OPENAPI_SPEC_VALIDATOR_VERSION" "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
}

what=("$@")
[ ${#what[@]} -gt 0 ] || what=(garage dynamodb tools)
for w in "${what[@]}"; do
  case "$w" in
    garage) install_garage ;;
    dynamodb) install_dynamodb ;;
    tools) install_tools ;;
    awscli) venv "awscli-$AWSCLI_VERSION" "awscli==$AWSCLI_VERSION" ;;
    schemathesis) venv "schemathesis-$SCHEMATHESIS_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" ;;
    *) echo "unknown component: $w" >&2; exit 2 ;;
  esac
done
