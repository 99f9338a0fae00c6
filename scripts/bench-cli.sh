#!/usr/bin/env bash
# The CLI benchmark: a 1 GiB file through the local API to Garage with
# `partwise upload`, beside `aws s3 cp` (awscli from PyPI, default settings)
# of the same file straight to Garage, in the same run; the CLI's peak memory
# against parallel x part size + 64 MiB; and a resume after a SIGKILL at 50 %.
# Not a test: it prints figures (and exits non-zero only if something fails).
#
#   scripts/bench-cli.sh [--no-build] [SIZE_MIB]      (default 1024)
#   --no-build: use the binaries already built (target/release).
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
SIZE_MIB=${1:-1024}
PARALLEL=8
ROUNDS=2
CACHE="${PARTWISE_CACHE:-$HOME/.cache/partwise}"

bash scripts/install-deps.sh garage dynamodb awscli
AWS=$(ls -d "$CACHE"/venv-awscli-*/bin/aws | sort -V | tail -1)
if [ "$build" = 1 ]; then cargo build --profile bench -p partwise-local -p partwise-cli >&2; fi
# The bench profile builds into target/release.
LOCAL=target/release/partwise-local
CLI=target/release/partwise

work=$(mktemp -d /tmp/partwise-bench-cli.XXXXXX)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$LOCAL" serve --port 0 --env-file "$work/env" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do [ -s "$work/env" ] && break; sleep 0.2; done
[ -s "$work/env" ] || { cat "$work/serve.log" >&2; echo "the local API did not start" >&2; exit 1; }
set -a; source "$work/env"; set +a
export PARTWISE_TOKEN="bench-$$" XDG_CACHE_HOME="$work/cache"
printf '[default]\nregion = %s\ns3 =\n    addressing_style = path\n' "$AWS_REGION" >"$work/aws-config"
export AWS_CONFIG_FILE="$work/aws-config"

file="$work/file.bin"
echo "# writing a ${SIZE_MIB} MiB file of random bytes" >&2
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$file"
cat "$file" >/dev/null   # both tools start from a warm page cache

secs() { python3 -c 'import sys; print(f"{float(sys.argv[1]):.2f}")' "$1"; }
now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$1" "$2"; }

aws_times=() cli_times=() cli_peaks=()
part_size=0
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now)
  "$AWS" --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 cp --only-show-errors "$file" "s3://$PARTWISE_BUCKET/bench/awscli-$round.bin"
  aws_times+=("$(elapsed "$t0" "$(now)")")

  /usr/bin/time -f '%e %M' -o "$work/time" "$CLI" upload --json --parallel "$PARALLEL" "$file" >"$work/cli.json"
  read -r t kib <"$work/time"
  cli_times+=("$t"); cli_peaks+=("$kib")
  part_size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["partSize"])' "$work/cli.json")
  echo "# round $round: aws s3 cp $(secs "${aws_times[-1]}") s, partwise $(secs "$t") s" >&2
done

# Resume: kill the CLI once it has sent half the file (bytes written to its
# sockets, from /proc), then run it again.
"$CLI" upload --json --parallel "$PARALLEL" "$file" >"$work/killed.json" 2>"$work/killed.err" &
victim=$!
half=$((SIZE_MIB * 1024 * 1024 / 2))
for _ in $(seq 1 15000); do
  sent=$(awk '/^wchar/ {print $2}' "/proc/$victim/io" 2>/dev/null || echo 0)
  [ "${sent:-0}" -ge "$half" ] && break
  kill -0 "$victim" 2>/dev/null || break
  sleep 0.02
done
kill -9 "$victim" 2>/dev/null || { echo "the CLI finished before it could be killed at 50 %" >&2; exit 1; }
wait "$victim" 2>/dev/null || true
sleep 1   # S3 finishes what it was receiving
held=$("$CLI" ls --json | python3 -c 'import json,sys
u=[json.loads(l) for l in sys.stdin if l.strip()]
print(max([x.get("bytesHeld") or 0 for x in u if x["state"]=="ACTIVE"] or [0]))')
/usr/bin/time -f '%e %M' -o "$work/time" "$CLI" upload --json --parallel "$PARALLEL" "$file" >"$work/resume.json" 2>"$work/resume.err"
read -r resume_t resume_kib <"$work/time"

python3 - "$SIZE_MIB" "$PARALLEL" "$part_size" "$held" "$resume_t" "$work/resume.json" \
  "${aws_times[*]}" "${cli_times[*]}" "${cli_peaks[*]}" <<'PY'
import json, sys
size_mib, parallel, part_size, held, resume_t, resume_file = sys.argv[1:7]
aws = [float(x) for x in sys.argv[7].split()]
cli = [float(x) for x in sys.argv[8].split()]
peaks = [int(x) / 1024 for x in sys.argv[9].split()]
size_mib, parallel, part_size, held = int(size_mib), int(parallel), int(part_size), int(held)
r = json.load(open(resume_file))
mib = 1024 * 1024
best_aws, best_cli = min(aws), min(cli)
target_mem = parallel * part_size / mib + 64
print(f"partwise CLI benchmark: {size_mib} MiB, parallel {parallel}, part size {part_size // mib} MiB, {len(aws)} rounds")
print(f"{'':34} {'best s':>8} {'MiB/s':>8}   all runs (s)")
print(f"{'aws s3 cp (straight to Garage)':34} {best_aws:8.2f} {size_mib / best_aws:8.1f}   {' '.join(f'{x:.2f}' for x in aws)}")
print(f"{'partwise upload (through the API)':34} {best_cli:8.2f} {size_mib / best_cli:8.1f}   {' '.join(f'{x:.2f}' for x in cli)}")
ratio = best_aws / best_cli
print(f"speed, partwise / aws s3 cp: {ratio:.2f}x (target >= 1.0x: {'met' if ratio >= 1.0 else 'MISSED'})")
peak = max(peaks)
print(f"partwise peak memory (max RSS): {peak:.1f} MiB; target <= {parallel} x {part_size // mib} MiB + 64 MiB = {target_mem:.0f} MiB: {'met' if peak <= target_mem else 'MISSED'}")
sent_bytes = min(r['partsSent'] * part_size, r['size'])
print(f"resume after SIGKILL at {held / mib:.0f} MiB held ({100 * held / (size_mib * mib):.0f} %): "
      f"{float(resume_t):.2f} s, {r['partsSent']} parts sent ({sent_bytes / mib:.0f} MiB), "
      f"{r['partsSkipped']} parts checked and kept")
PY
