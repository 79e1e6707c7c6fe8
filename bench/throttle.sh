#!/usr/bin/env bash
# freezeframe throttle benchmark (issue 15): does a configured limit hold?
# A container of SIZE MiB (default 512) of incompressible data on a loop
# btrfs volume (direct I/O), backed up to an uncompressed tar target:
#   none           no limit (the baseline, with `tar -cf - | cat` beside it)
#   bwlimit        [throttle] bwlimit = RATE: bytes/s written to the target
#   io_read_max    [throttle] io_read_max = RATE: the blkio cgroup of the
#                  archive workers, on the volume's loop device
# For each, the archive phase's rate (tar bytes / archive_ms of the
# manifest) and its ratio to RATE, medians and ranges of REPS runs (default
# 3), caches dropped before every run. The target is 1.00 +- 0.15.
# Prints a Markdown table. Not a test.
# usage: bash bench/throttle.sh [SIZE_MIB] [RATE_MIB] [REPS]
set -euo pipefail
size_mib=${1:-512}
rate_mib=${2:-32}
reps=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
ff_bench_setup tbench
ff_bench_volume "$((size_mib * 3 + 1024))M"
mkdir "$v2/$cgbase" "$work/backups"
big="$work/mnt/ct/big"
mkdir -p "$big"
echo "generating ${size_mib} MiB..." >&2
for i in $(seq 1 $((size_mib / 64))); do
    head -c $((64 << 20)) /dev/urandom > "$big/f$i"
done
sync
ff_bench_start_big
rate=$((rate_mib << 20))
config() { # config EXTRA: an uncompressed tar target, and EXTRA
    ff_bench_config "$big" "[target]
path = \"$work/backups\"
[backup]
compress = \"none\"
$1"
}
results="$work/results"
: > "$results"
for rep in $(seq 1 "$reps"); do
    for kind in none bwlimit io_read_max; do
        case $kind in
            none) config "" ;;
            bwlimit) config "[throttle]
bwlimit = \"${rate_mib}M\"" ;;
            io_read_max) config "[throttle]
io_read_max = \"${rate_mib}M\"" ;;
        esac
        rm -rf "$work/backups"/* "$work/state"
        sync; echo 3 > /proc/sys/vm/drop_caches
        json=$("$ff" backup --all --json)
        python3 - "$kind" "$json" "$big" >> "$results" <<'PY'
import json, os, sys
kind, m, big = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
c = m["containers"][0]
assert c["result"] == "ok", c
size = sum(f["size"] for f in c["files"])
print(kind, size / (c["timings"]["archive_ms"] / 1000.0))
PY
    done
    sync; echo 3 > /proc/sys/vm/drop_caches
    t0=$(date +%s.%N)
    tar -C "$big" -cf - . | cat > /dev/null
    echo "tar $(python3 -c "import sys; print($((size_mib << 20)) / ($(date +%s.%N) - $t0))")" >> "$results"
done
python3 - "$results" "$rate" "$size_mib" "$reps" <<'PY'
import statistics, sys
rows, rate, size, reps = {}, int(sys.argv[2]), sys.argv[3], sys.argv[4]
for line in open(sys.argv[1]):
    k, v = line.split()
    rows.setdefault(k, []).append(float(v))
print(f"| {size} MiB, limit {rate >> 20} MiB/s, {reps} runs | archive rate MiB/s, median (range) | ratio to the limit |")
print("|---|---|---|")
for k in ["tar", "none", "bwlimit", "io_read_max"]:
    v = sorted(rows[k])
    med = statistics.median(v)
    ratio = f"{med / rate:.2f}" if k in ("bwlimit", "io_read_max") else "-"
    print(f"| {k} | {med / 2**20:.1f} ({v[0] / 2**20:.1f}-{v[-1] / 2**20:.1f}) | {ratio} |")
PY
