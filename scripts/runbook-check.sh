#!/usr/bin/env bash
# Runs docs/operations.md's commands that can run off AWS, as written, and
# checks what they do:
#   - `redrive_notify` (Redriving the notify failure queue), on DynamoDB
#     Local's real stream and the real `notify` binary: it publishes exactly
#     the events of the failed range, and deletes the failure message only
#     when notify reports no failure (a refusing EventBridge keeps it);
#   - the stuck-COMPLETING query (A stuck COMPLETING upload): it finds the
#     COMPLETING item past its lease and nothing else;
#   - the log fields the Logs Insights queries use (`level`, `fields.message`,
#     `fields.records`, `spans.0.requestId`) are the ones notify writes.
# SQS and Lambda's Invoke API are stood in by an `aws` wrapper first on PATH:
# receive-message hands out one planted failure record, delete-message is
# recorded, `lambda invoke` runs the binary (scripts/runbook_fakes.py); every
# other call is the real AWS CLI against DynamoDB Local.
#
#   scripts/runbook-check.sh      (scripts/test.sh runs it; builds `notify`
#                                  unless NOTIFY_BIN names a binary)
set -euo pipefail
cd "$(dirname "$0")/.."

DOC=${RUNBOOK_DOC:-docs/operations.md}    # another copy, to check that this check can fail
CACHE="${PARTWISE_CACHE:-$HOME/.cache/partwise}"
log() { echo "runbook-check: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

bash scripts/install-deps.sh dynamodb awscli
# The runbook's commands use jq (Debian's package; on this machine kind by default).
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
# shellcheck disable=SC2012  # our own folder names, versions sorted
REAL_AWS=$(ls -d "$CACHE"/venv-awscli-*/bin/aws | sort -V | tail -n 1)
# shellcheck disable=SC2012
DDB_DIR=$(ls -d "$CACHE"/dynamodb-local-* | sort -V | tail -n 1)
if [ -z "${NOTIFY_BIN:-}" ]; then
  cargo build --quiet --locked -p notify
  NOTIFY_BIN=${CARGO_TARGET_DIR:-target}/debug/notify
fi
NOTIFY_BIN=$(realpath "$NOTIFY_BIN")
[ -x "$NOTIFY_BIN" ] || fail "no notify binary at $NOTIFY_BIN"

work=$(mktemp -d)
ddb_pid=""
cleanup() {
  local status=$?
  # DynamoDB Local answers TERM with status 143: that is not this check's.
  if [ -n "$ddb_pid" ]; then
    kill "$ddb_pid" 2>/dev/null || true
    wait "$ddb_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    for f in notify.log ddb.log; do
      [ -s "$work/$f" ] && { echo "--- $f (last 20 lines) ---" >&2; tail -n 20 "$work/$f" >&2; }
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$DDB_DIR" && exec java -Djava.library.path=DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$port") \
  >"$work/ddb.log" 2>&1 &
ddb_pid=$!

# The stand-in `aws`: SQS and Lambda faked, the rest real, on DynamoDB Local.
mkdir -p "$work/bin" "$work/state"
cat >"$work/bin/aws" <<EOF
#!/usr/bin/env bash
set -euo pipefail
state="$work/state"
case "\$1 \$2" in
  "sqs receive-message")
    if [ -f "\$state/message.json" ] && [ ! -f "\$state/received" ]; then
      touch "\$state/received"; cat "\$state/message.json"
    else echo '{}'; fi ;;
  "sqs delete-message") shift 2; echo "\$*" >>"\$state/deleted" ;;
  "lambda invoke")
    shift 2; payload=""; out=""
    while [ \$# -gt 0 ]; do
      case \$1 in
        --payload) payload=\${2#file://}; shift 2 ;;
        --function-name|--cli-binary-format) shift 2 ;;
        *) out=\$1; shift ;;
      esac
    done
    python3 "$PWD/scripts/runbook_fakes.py" "$NOTIFY_BIN" "\$payload" "\$out" "\$state/putevents.jsonl" "$work/notify.log"
    echo '{"StatusCode": 200}' ;;
  *) exec "$REAL_AWS" --endpoint-url "http://127.0.0.1:$port" "\$@" ;;
esac
EOF
chmod +x "$work/bin/aws"
export PATH="$work/bin:$PATH"
export AWS_ACCESS_KEY_ID=AKIDRUNBOOKCHECK AWS_SECRET_ACCESS_KEY=runbook-check AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
TABLE=runbook-check
export PARTWISE_BUCKET=runbook-check PARTWISE_TABLE=$TABLE

for _ in $(seq 1 200); do aws dynamodb list-tables >/dev/null 2>&1 && break; sleep 0.2; done
aws dynamodb list-tables >/dev/null || fail "DynamoDB Local did not start"
# The tracking table's key, live index and stream, as template.yaml has them.
aws dynamodb create-table --table-name "$TABLE" --billing-mode PAY_PER_REQUEST \
  --attribute-definitions AttributeName=upload_id,AttributeType=S AttributeName=live_shard,AttributeType=S \
    AttributeName=initiated_at,AttributeType=N \
  --key-schema AttributeName=upload_id,KeyType=HASH \
  --global-secondary-indexes '[{"IndexName": "live-uploads", "Projection": {"ProjectionType": "ALL"},
      "KeySchema": [{"AttributeName": "live_shard", "KeyType": "HASH"}, {"AttributeName": "initiated_at", "KeyType": "RANGE"}]}]' \
  --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES >/dev/null

now=$(( $(date +%s) * 1000 ))
item() {  # item ID OWNER STATUS SHARD UPDATED_AT [EXTRA_ATTRIBUTES_JSON]
  local extra=${6:-}
  [ -n "$extra" ] || extra='{}'
  jq -cn --arg id "$1" --arg o "$2" --arg st "$3" --arg sh "$4" --arg up "$5" --argjson now "$now" --argjson extra "$extra" \
    '{upload_id: {S: $id}, key: {S: "uploads/\($o)/\($id)/f.bin"}, owner: {S: $o}, status: {S: $st},
      initiated_at: {N: "\($now - 7200000)"}, updated_at: {N: $up}, filename: {S: "f.bin"},
      content_type: {S: "application/octet-stream"}}
     + (if $sh == "" then {} else {live_shard: {S: $sh}} end) + $extra'
}
put() { aws dynamodb put-item --table-name "$TABLE" --item "$1"; }
done_attrs='{"expires_at": {"N": "1900000000"}}'
put "$(item up-a alice ACTIVE 3 "$now")"                                   # 1: before the failed range
put "$(item up-b bob ACTIVE 5 "$now")"                                     # 2: the range: B started,
put "$(item up-a alice COMPLETED '' $((now + 1000)) "$(jq -c '. + {etag: {S: "\"e-2\""}, completed_size: {N: "10485760"},
  location: {S: "https://runbook-check.s3.amazonaws.com/k"}, completed_by: {S: "api"}}' <<<"$done_attrs")")"  # 3: A completed,
put "$(item up-b bob ABORTED '' $((now + 2000)) "$(jq -c '. + {aborted_by: {S: "sweep"}, abort_reason: {S: "stale"}}' <<<"$done_attrs")")"  # 4: B aborted
put "$(item up-c carol ACTIVE 5 "$now")"                                   # 5: after the range
put "$(item up-d dave COMPLETING 7 $((now - 20 * 60 * 1000)))"             # stuck: claimed 20 min ago
put "$(item up-e erin COMPLETING 2 $((now - 60 * 1000)))"                  # within its lease
put "$(item up-f fred ACTIVE 7 $((now - 20 * 60 * 1000)))"                 # not completing

# The failure record Lambda would send for records 2..4 (the mapping's on-failure destination).
stream=$(aws dynamodb describe-table --table-name "$TABLE" --query Table.LatestStreamArn --output text)
shard=$(aws dynamodbstreams describe-stream --stream-arn "$stream" --query 'StreamDescription.Shards[0].ShardId' --output text)
it=$(aws dynamodbstreams get-shard-iterator --stream-arn "$stream" --shard-id "$shard" \
       --shard-iterator-type TRIM_HORIZON --query ShardIterator --output text)
aws dynamodbstreams get-records --shard-iterator "$it" --output json >"$work/all.json"
[ "$(jq '.Records | length' "$work/all.json")" = 8 ] || fail "expected 8 stream records: $(jq -c '.Records | length' "$work/all.json")"
jq -n --arg arn "$stream" --arg shard "$shard" \
  --arg first "$(jq -r '.Records[1].dynamodb.SequenceNumber' "$work/all.json")" \
  --arg last "$(jq -r '.Records[3].dynamodb.SequenceNumber' "$work/all.json")" \
  '{Messages: [{ReceiptHandle: "receipt-1", Body: ({
     requestContext: {requestId: "r-1", functionArn: "arn:aws:lambda:us-east-1:123456789012:function:notify",
                      condition: "RetryAttemptsExhausted", approximateInvokeCount: 11},
     responseContext: {statusCode: 200, executedVersion: "$LATEST"}, version: "1.0", timestamp: "2026-12-07T05:00:00.000Z",
     DDBStreamBatchInfo: {shardId: $shard, startSequenceNumber: $first, endSequenceNumber: $last, batchSize: 3,
                          approximateArrivalOfFirstRecord: "2026-12-07T04:00:00Z",
                          approximateArrivalOfLastRecord: "2026-12-07T04:00:01Z", streamArn: $arn}} | tojson)}]}' \
  >"$work/state/message.json"

# The runbook's function, exactly as written.
awk '/^redrive_notify\(\) \{$/,/^}$/' "$DOC" >"$work/redrive.sh"
[ -s "$work/redrive.sh" ] || fail "no redrive_notify() in $DOC"
# shellcheck disable=SC2034  # the names the runbook's function reads
NOTIFY_DLQ=https://sqs.us-east-1.amazonaws.com/123456789012/NotifyFailureQueue NOTIFY=notify
# shellcheck disable=SC1091
source "$work/redrive.sh"

# 1. EventBridge refuses everything: the redrive stops and keeps the message.
if RUNBOOK_REFUSE_PUTEVENTS=1 redrive_notify >"$work/refused.out" 2>&1; then
  fail "redrive_notify succeeded while PutEvents refused every entry: $(cat "$work/refused.out")"
fi
[ ! -e "$work/state/deleted" ] || fail "the failure message was deleted although notify failed"
[ ! -e "$work/state/putevents.jsonl" ] || fail "events recorded while refused"
grep -q "notify still fails on" "$work/refused.out" || fail "unexpected output: $(cat "$work/refused.out")"
log "refused PutEvents: the message is kept"

# 2. EventBridge accepts: exactly the range's three events, then the message goes.
rm -f "$work/state/received"
redrive_notify >"$work/redrive.out" 2>&1 || fail "redrive_notify failed: $(cat "$work/redrive.out")"
published=$(jq -r '"\(.DetailType)=\(.Detail | fromjson | .eventId)"' "$work/state/putevents.jsonl" | sort | tr '\n' ' ')
want="Upload Aborted=up-b:ABORTED Upload Completed=up-a:COMPLETED Upload Started=up-b:STARTED "
[ "$published" = "$want" ] || fail "published [$published], want [$want]"
[ "$(cat "$work/state/deleted")" = "--queue-url $NOTIFY_DLQ --receipt-handle receipt-1" ] \
  || fail "deleted: $(cat "$work/state/deleted")"
log "redrive: published exactly the failed range's 3 events, then deleted its message"

# 3. The log fields the runbook's queries name.
jq -se --arg id "$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import runbook_fakes; print(runbook_fakes.REQUEST_ID)')" \
  'map(select(.fields.message == "stream batch")) | length == 1 and (.[0] | .level == "INFO"
     and .fields.records == 3 and .fields.events == 3 and .fields.failed == 0 and .spans[0].requestId == $id)' \
  "$work/notify.log" >/dev/null || fail "notify's log lines do not carry the fields the runbook queries: $(cat "$work/notify.log")"
log "log lines: level, fields.message, fields.records, spans.0.requestId as the queries expect"

# 4. The stuck-COMPLETING query, exactly as written (its loop), over every shard.
# shellcheck disable=SC2034  # the names the runbook's loop reads
SHARDS=16 lease=$(( ($(date +%s) - 15 * 60) * 1000 ))
awk '/^for s in \$\(seq 0 \$\(\( SHARDS - 1 \)\)\); do$/,/^done$/' "$DOC" >"$work/stuck.sh"
[ -s "$work/stuck.sh" ] || fail "no stuck-COMPLETING loop in $DOC"
# shellcheck disable=SC1091
found=$(source "$work/stuck.sh") || fail "the stuck-COMPLETING query failed"
[ "$(jq -sc 'map(.upload_id)' <<<"$found")" = '["up-d"]' ] || fail "the stuck query found: $found"
log "stuck COMPLETING: the query finds the one claim past its lease"
log "passed"
