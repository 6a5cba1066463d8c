#!/usr/bin/env bash
# One chaos run per fault type, for the embedded group and for etcd 3.4 (3 members each), as reported
# in docs/jepsen.md. Usage: scripts/jepsen-runs.sh [--time-limit SECONDS] [--parallel N] [--out DIR]
# Needs root (network namespaces). Builds kuboard and kuboard-jepsen in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."

time_limit=300
parallel=2
out=runs/faults
while [ $# -gt 0 ]; do
    case "$1" in
        --time-limit) time_limit="$2"; shift 2 ;;
        --parallel) parallel="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

scripts/install-deps.sh test
cargo build --release -p kuboard -p kuboard-jepsen
# Private copies, so that a rebuild during the runs does not change the binaries under test.
bin="$out/bin"
mkdir -p "$bin"
cp target/release/kuboard target/release/kuboard-jepsen "$bin/"

# system  fault-name  --nemesis value  --workload value
runs=(
    "embedded partition   partition               register,set,watch,http"
    "etcd     partition   partition               register,set,watch"
    "embedded kill        kill,kill-leader        register,set,watch,http"
    "etcd     kill        kill,kill-leader        register,set,watch"
    "embedded pause       pause,pause-leader      register,set,watch,http"
    "etcd     pause       pause,pause-leader      register,set,watch"
    "embedded loss        loss                    register,set,watch,http"
    "etcd     loss        loss                    register,set,watch"
    "embedded delay       delay                   register,set,watch,http"
    "etcd     delay       delay                   register,set,watch"
    "embedded membership  membership              register,set,watch,http"
    "etcd     membership  membership              register,set,watch"
    "embedded audit-db    audit-db                register,strict-audit"
    "embedded tamper      tamper                  register,set,watch,http"
)

run_one() {
    local system=$1 fault=$2 nemesis=$3 workload=$4
    local dir="$out/$system-$fault"
    rm -rf "$dir"
    local start=$SECONDS
    set +e
    "$bin/kuboard-jepsen" test --system "$system" --members 3 --workload "$workload" \
        --nemesis "$nemesis" --time-limit "$time_limit" --kuboard-binary "$bin/kuboard" \
        --out "$dir" >"$dir.log" 2>&1
    local code=$?
    set -e
    echo "$system $fault exit=$code seconds=$((SECONDS - start))" | tee -a "$out/summary.txt"
}

mkdir -p "$out"
: >"$out/summary.txt"
running=0
for spec in "${runs[@]}"; do
    # shellcheck disable=SC2086
    run_one $spec &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait
echo "runs in $out; exit codes in $out/summary.txt"

# The plots docs/jepsen.md links to: each run's throughput.svg as it is, and its latency.svg (one
# point per operation, megabytes of SVG) rendered to PNG.
if ! command -v rsvg-convert >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends librsvg2-bin </dev/null
fi
mkdir -p docs/jepsen
for spec in "${runs[@]}"; do
    # shellcheck disable=SC2086
    set -- $spec
    dir="$out/$1-$2"
    if [ -f "$dir/latency.svg" ]; then
        rsvg-convert --width 1400 -b white -o "docs/jepsen/$1-$2-latency.png" "$dir/latency.svg"
        cp "$dir/throughput.svg" "docs/jepsen/$1-$2-throughput.svg"
    fi
done
echo "plots copied to docs/jepsen/"
! grep -qv "exit=0" "$out/summary.txt"
