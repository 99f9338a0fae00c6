#!/usr/bin/env bash
# The CLI benchmark, side by side with `aws s3 cp` (awscli from PyPI, default
# settings) to the S3 endpoint the API hands out (Garage, behind the local
# stand-in for S3's notifications), runs interleaved A B A B so a busy moment of
# the machine hits both tools alike:
#   1. one file of SIZE_MIB (default 1 GiB): `partwise upload` through the
#      local API against `aws s3 cp`;
#   2. a tree of 200 files of 1 to 8 MiB: `partwise upload --recursive`
#      against `aws s3 cp --recursive`;
#   3. the plan of a 64 GiB sparse file (`partwise upload --dry-run`).
# For each: the median and range of ROUNDS runs, the ratio of medians, and
# peak memory (max RSS from /usr/bin/time). The machine is named at the top.
# Not a test: it prints figures (and exits non-zero only if something fails).
#
#   scripts/bench-cli.sh [--no-build] [SIZE_MIB]      (default 1024)
#   ROUNDS=5 scripts/bench-cli.sh                     (default 3 rounds each)
#   --no-build: use the binaries already built (target/release).
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
SIZE_MIB=${1:-1024}
PARALLEL=${PARALLEL:-8}
ROUNDS=${ROUNDS:-3}
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
echo "# writing a ${SIZE_MIB} MiB file of random bytes, and 200 files of 1 to 8 MiB" >&2
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$file"
tree="$work/tree"
python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(26)
for i in range(200):
    d = os.path.join(root, f"d{i % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:03}.bin"), "wb") as f:
        f.write(os.urandom(rng.randint(1, 8) * 1024 * 1024 - rng.randint(0, 4096)))
PY
cat "$file" "$tree"/*/* >/dev/null   # every run starts from a warm page cache

# The local stack's processes, for where each run's CPU time goes: Garage,
# DynamoDB Local, and the API server (with its S3-notification and stream
# stand-ins, which settle and announce what partwise uploads).
garage_pid=$(pgrep -P "$server" -f 'garage' | head -1)
dynamodb_pid=$(pgrep -P "$server" -f 'DynamoDBLocal' | head -1)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
stack_ticks() { echo "$(cpu_ticks "$garage_pid") $(cpu_ticks "$dynamodb_pid") $(cpu_ticks "$server")"; }

# Runs one command under /usr/bin/time; appends "seconds kib client-cpu-s
# garage-cpu-s dynamodb-cpu-s api-cpu-s" to $1 (the stack's CPU counted to
# a second after the run, so work the run set off is counted with it).
timed() {
  local out=$1; shift
  local before after
  before=$(stack_ticks)
  /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
  sleep 1
  after=$(stack_ticks)
  read -r e m u sy <"$work/time"
  python3 -c "import sys; b, a = sys.argv[1].split(), sys.argv[2].split(); print(sys.argv[3], sys.argv[4], float(sys.argv[5]) + float(sys.argv[6]), *[(int(y) - int(x)) / 100 for x, y in zip(b, a)])" \
    "$before" "$after" "$e" "$m" "$u" "$sy" >>"$out"
}

# One untimed round of each first: the JVM of DynamoDB Local (which only
# partwise's tracking exercises) compiles its hot paths in the first seconds.
echo "# warm-up round (not counted)" >&2
"$AWS" --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 cp --only-show-errors --recursive "$tree" "s3://$PARTWISE_BUCKET/bench/aws-warm/" >/dev/null
PARTWISE_TOKEN="bench-$$-warm" "$CLI" upload --json --parallel "$PARALLEL" --recursive "$tree" >/dev/null
: >"$work/one-aws" ; : >"$work/one-cli" ; : >"$work/tree-aws" ; : >"$work/tree-cli"
for round in $(seq 1 "$ROUNDS"); do
  echo "# round $round of $ROUNDS" >&2
  timed "$work/one-aws" "$AWS" --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 cp --only-show-errors "$file" "s3://$PARTWISE_BUCKET/bench/aws-$round/file.bin"
  # A caller per round: the tree's 200 uploads a round would pass the
  # default quota of 600 new uploads a minute, whose wait is not what is measured.
  export PARTWISE_TOKEN="bench-$$-$round"
  timed "$work/one-cli" "$CLI" upload --json --parallel "$PARALLEL" "$file"
  timed "$work/tree-aws" "$AWS" --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 cp --only-show-errors --recursive "$tree" "s3://$PARTWISE_BUCKET/bench/aws-tree-$round/"
  timed "$work/tree-cli" "$CLI" upload --json --parallel "$PARALLEL" --recursive "$tree"
done

# The plan of a 64 GiB file, from a sparse file: nothing is read or sent.
sparse="$work/sparse.bin"
truncate -s 64G "$sparse"
: >"$work/plan"
timed "$work/plan" "$CLI" upload --dry-run "$sparse"

machine="$(uname -srm); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
tree_mib=$(du -sm --apparent-size "$tree" | cut -f1)
python3 - "$machine" "$SIZE_MIB" "$tree_mib" "$PARALLEL" "$ROUNDS" "$work" "$("$AWS" --version 2>&1 | cut -d' ' -f1)" <<'PY'
import statistics, sys
machine, size_mib, tree_mib, parallel, rounds, work, aws_version = sys.argv[1:8]
size_mib, tree_mib, parallel = int(size_mib), int(tree_mib), int(parallel)

def runs(name):
    rows = [l.split() for l in open(f"{work}/{name}") if l.strip()]
    return [float(r[0]) for r in rows], [int(r[1]) / 1024 for r in rows]

print(f"partwise CLI benchmark on {machine}")
print(f"{aws_version} against partwise (release), parallel {parallel}, {rounds} interleaved rounds (A B A B)")
print()
print(f"{'':44} {'median s':>9} {'range s':>13} {'MiB/s':>7} {'peak RSS':>9}")
ratios = {}
for label, mib, a, b in [
    (f"{size_mib} MiB file", size_mib, "one-aws", "one-cli"),
    (f"200 files, {tree_mib} MiB", tree_mib, "tree-aws", "tree-cli"),
]:
    for tool, name in [("aws s3 cp (to the S3 endpoint)", a), ("partwise upload (through the API)", b)]:
        t, m = runs(name)
        med = statistics.median(t)
        print(f"{label + ': ' + tool:44} {med:9.2f} {min(t):6.2f}-{max(t):<6.2f} {mib / med:7.1f} {max(m):7.1f} M")
    ratios[label] = statistics.median(runs(a)[0]) / statistics.median(runs(b)[0])
print()
for label, r in ratios.items():
    print(f"speed, partwise / aws s3 cp, {label}: {r:.2f}x (target >= 1.2x: {'met' if r >= 1.2 else 'MISSED'})")
print()
print("CPU seconds per run, median (client; the local stack: Garage, DynamoDB Local, the API server and its stand-ins):")
print(f"{'':44} {'client':>7} {'Garage':>7} {'DynamoDB':>9} {'API':>6} {'all':>6}")
for label, name in [("1 GiB: aws s3 cp", "one-aws"), ("1 GiB: partwise", "one-cli"),
                    ("200 files: aws s3 cp", "tree-aws"), ("200 files: partwise", "tree-cli")]:
    rows = [l.split() for l in open(f"{work}/{name}") if l.strip()]
    cols = [statistics.median(float(r[i]) for r in rows) for i in range(2, 6)]
    print(f"{label:44} {cols[0]:7.2f} {cols[1]:7.2f} {cols[2]:9.2f} {cols[3]:6.2f} {sum(cols):6.2f}")
print()
_, plan_mem = runs("plan")
print(f"64 GiB sparse file, --dry-run plan: peak RSS {max(plan_mem):.1f} MiB")
_, cli_mem = runs("one-cli")
bound = 64 + parallel * 8
print(f"partwise peak RSS bound, 64 MiB + {parallel} x 8 MiB = {bound} MiB: "
      f"{'met' if max(cli_mem + runs('tree-cli')[1]) <= bound else 'MISSED'}")
PY
