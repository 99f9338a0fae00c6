#!/usr/bin/env bash
# Checks template.yaml the way a cloud team would before deploying it:
#   1. sam validate --lint        (SAM's translator and cfn-lint, as SAM ships them)
#   2. cfn-lint + cfn-lint-serverless rules (-a cfn_lint_serverless.rules)
#   3. checkov, CloudFormation framework
#   4. openapi-spec-validator on openapi.yaml (the API's description)
#   5. scripts/check-dashboard.py: the dashboard's JSON, which cfn-lint sees as
#      strings, and that it and the alarms cover every function, queue and alarm
# Clean, or each skip justified beside its resource in template.yaml
# (Metadata: checkov.skip with a comment; Metadata: cfn-lint.config.ignore_checks
# with a comment). Exits non-zero on any finding, warnings included.
#
#   scripts/checks.sh [TEMPLATE]   (default: template.yaml)
#
# Offline and quick (about 30 s): telemetry, version checks, the instance
# metadata service and checkov's platform downloads are all turned off.
# The tools live in venvs under $PARTWISE_CACHE, installed by install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh tools

CACHE="${PARTWISE_CACHE:-$HOME/.cache/partwise}"
# The pinned versions, read from install-deps.sh so the venv names always match.
eval "$(grep -E '^(SAM|CARGO_LAMBDA|CFN_LINT|CFN_LINT_SERVERLESS|CHECKOV|OPENAPI_SPEC_VALIDATOR)_VERSION=' scripts/install-deps.sh)"
SAM_BIN="$CACHE/venv-sam-$SAM_VERSION-cl-$CARGO_LAMBDA_VERSION/bin"
CFNLINT_BIN="$CACHE/venv-cfnlint-$CFN_LINT_VERSION-$CFN_LINT_SERVERLESS_VERSION/bin"
CHECKOV_BIN="$CACHE/venv-checkov-$CHECKOV_VERSION/bin"
OPENAPI_BIN="$CACHE/venv-openapi-$OPENAPI_SPEC_VALIDATOR_VERSION/bin"

TEMPLATE="${1:-template.yaml}"

# No network: no telemetry, no update checks, no EC2 metadata look-ups for a
# region or credentials (boto would wait on them), no Prisma Cloud downloads.
export SAM_CLI_TELEMETRY=0
export SAM_CLI_DISABLE_VERSION_CHECK=1
export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export CKV_PARSE_ERROR_FAIL=true
export PYTHONWARNINGS=ignore

failed=()
run() {
  local name=$1
  shift
  local out status=0
  out=$("$@" 2>&1) || status=$?
  if [ "$status" -eq 0 ]; then
    echo "checks: $name: clean"
  else
    echo "checks: $name: FAILED (exit $status)"
    printf '%s\n' "$out" | sed 's/^/    /'
    failed+=("$name")
  fi
}

# 1. SAM's own validation, with its bundled cfn-lint.
run "sam validate --lint" "$SAM_BIN/sam" validate --lint --template-file "$TEMPLATE"

# 2. cfn-lint with the serverless rules. Exit codes are bit flags (2 errors,
#    4 warnings, 8 informational): anything but 0 is a finding.
run "cfn-lint (+serverless rules)" "$CFNLINT_BIN/cfn-lint" --non-zero-exit-code informational \
  -a cfn_lint_serverless.rules -- "$TEMPLATE"

# 3. checkov: failed checks only, without code blocks. A template it cannot
#    parse is a failure too (CKV_PARSE_ERROR_FAIL).
checkov_status=0
checkov_out=$("$CHECKOV_BIN/checkov" -f "$TEMPLATE" --framework cloudformation --quiet --compact \
  --skip-download 2>&1) || checkov_status=$?
checkov_summary=$(printf '%s\n' "$checkov_out" | grep -E 'Passed checks' || true)
if [ "$checkov_status" -eq 0 ] && [ -n "$checkov_summary" ] &&
  ! printf '%s\n' "$checkov_summary" | grep -qE 'Failed checks: [1-9]|Parsing errors: [1-9]'; then
  echo "checks: checkov: clean ($checkov_summary)"
else
  echo "checks: checkov: FAILED (exit $checkov_status)"
  printf '%s\n' "$checkov_out" | sed 's/^/    /'
  failed+=("checkov")
fi

# 4. openapi.yaml is a valid OpenAPI document (structure, $refs, path
#    parameters, unique operation ids). shared/tests/openapi.rs checks that it
#    agrees with the code.
run "openapi-spec-validator (openapi.yaml)" "$OPENAPI_BIN/openapi-spec-validator" openapi.yaml

# 5. The operations dashboard (PyYAML from the cfn-lint venv), then the
#    checker's self-test, so a checker that stopped catching faults fails too.
run "dashboard and alarms (check-dashboard.py)" sh -c \
  '"$1" scripts/check-dashboard.py "$2" && "$1" scripts/check-dashboard.py --self-test "$2"' \
  sh "$CFNLINT_BIN/python" "$TEMPLATE"

if [ ${#failed[@]} -gt 0 ]; then
  echo "checks: failed: ${failed[*]}" >&2
  exit 1
fi
echo "checks: template.yaml passed sam validate --lint, cfn-lint (+serverless rules), checkov and check-dashboard.py; openapi.yaml passed openapi-spec-validator"
