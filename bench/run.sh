#!/usr/bin/env bash
# freezeframe benchmark. Generates a ~SIZE GiB private area (a root-like tree
# of many small files, a large SQLite database, compressible logs) on a
# loop-backed btrfs volume, then measures, in one run and on the same data:
#   - archive throughput: freezeframe zstd vs `tar -c | zstd -T0 -3`,
#     freezeframe bzip2 vs the classic `tar -cf` then `bzip2 -9`;
#   - the freeze window (p50, max) for 1, 10 and 100 containers frozen in
#     one `group` window while a SQLite writer commits in one of them, and
#     for the big container itself.
# Prints a Markdown table (see docs/BENCHMARKS.md). Not a test: it checks
# nothing, it measures.  usage: sudo bash bench/run.sh [SIZE_GIB]
set -euo pipefail
size_gib=${1:-2}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
. "$here/common.sh"
ff_bench_setup bench

ff_btrfs_up "$work" "$((size_gib * 3 + 2))G"
mkdir -p "$work/out" "$work/backups"
mkdir "$v2/$cgbase"

echo "generating ~${size_gib} GiB of data..." >&2
big="$work/mnt/ct/big"
ff_generate_container "$big" "$size_gib"
sync
data_bytes=$(du -sb "$big" | cut -f1)
data_gib=$(python3 -c "print(round($data_bytes / 2**30, 2))")
echo "generated $data_gib GiB" >&2

# containers: "big" (idle) and small ones for freeze windows; a SQLite writer in s1
start() {
    local id=$1; shift
    mkdir -p "$v2/$cgbase/$id"
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$v2/$cgbase/$id" "$@" &
    pids+=($!)
}
start big sleep 100000
conf="$work/freezeframe.toml"
{
    printf 'state_dir = "%s"\n\n' "$work/state"
    printf '[target]\npath = "%s"\n\n[[volume]]\nname = "bench"\npath = "%s"\nprovider = "btrfs"\n' "$work/backups" "$work/mnt/ct"
    printf '\n[[container]]\nid = "big"\ncgroup = "%s/big"\nprivate = "%s"\n' "$cgbase" "$big"
    for i in $(seq 1 100); do
        mkdir -p "$work/mnt/ct/s$i"
        head -c 64K /dev/urandom > "$work/mnt/ct/s$i/data"
        if [ "$i" = 1 ]; then
            start "s$i" python3 "$repo/scripts/workloads/sqlite_writer.py" "$work/mnt/ct/s1/db.sqlite"
        else
            start "s$i" sleep 100000
        fi
        printf '\n[[container]]\nid = "s%d"\ncgroup = "%s/s%d"\nprivate = "%s"\n' "$i" "$cgbase" "$i" "$work/mnt/ct/s$i"
    done
} > "$conf"
export FREEZEFRAME_CONFIG="$conf"

# the reference snapshot the classic tools read; warm the page cache once
btrfs -q subvolume snapshot -r "$work/mnt/ct" "$work/mnt/ref"
tar -cf - -C "$work/mnt/ref/big" . > /dev/null

results="$work/results"
measure tar_zstd sh -c "tar -cf - -C '$work/mnt/ref/big' . | zstd -T0 -3 -q -o '$work/out/ref.tar.zst'" >> "$results"
measure ff_zstd "$ff" backup big --compress zstd --level 3 --json >> "$results"
cp "$(ls -d "$work"/backups/*/ | tail -n1)manifest.json" "$work/out/ff_zstd.json"
measure tar_classic sh -c "tar -cf '$work/out/ref.tar' -C '$work/mnt/ref/big' . && bzip2 -9 '$work/out/ref.tar'" >> "$results"
measure ff_bzip2 "$ff" backup big --compress bzip2 --level 9 --json >> "$results"
cp "$(ls -d "$work"/backups/*/ | tail -n1)manifest.json" "$work/out/ff_bzip2.json"

# freeze windows with the writer active: 1, 10 and 100 containers, 7 runs each
for n in 1 10 100; do
    ids=$(seq -f "s%g" 1 "$n" | tr '\n' ' ')
    for r in $(seq 1 7); do
        "$ff" backup $ids --json > "$work/out/freeze-$n-$r.json"
        sleep 0.2
    done
done

python3 - "$work" "$data_bytes" "$(nproc)" <<'PY'
import glob, json, os, statistics, sys
work, data, cores = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {}
for line in open(os.path.join(work, "results")):
    k, wall, user, sys_, rss = line.split()
    res[k] = dict(wall=float(wall), cpu=float(user) + float(sys_), rss=int(rss) // 1024)
size = lambda p: os.path.getsize(p)
out = os.path.join(work, "out")
ffz = json.load(open(os.path.join(out, "ff_zstd.json")))["containers"][0]
ffb = json.load(open(os.path.join(out, "ff_bzip2.json")))["containers"][0]
sizes = {"tar_zstd": size(os.path.join(out, "ref.tar.zst")), "ff_zstd": ffz["bytes_out"],
         "tar_classic": size(os.path.join(out, "ref.tar.bz2")), "ff_bzip2": ffb["bytes_out"]}
gib = data / 2**30
print(f"Data: {gib:.2f} GiB ({data} bytes) on a loop-backed btrfs volume, {cores} cores, page cache warm.\n")
print("| job | wall s | CPU s | peak RSS MiB | output MiB | throughput MiB/s | vs reference |")
print("|---|---:|---:|---:|---:|---:|---:|")
for k, ref, name in [("tar_zstd", "tar_zstd", "`tar -c \\| zstd -T0 -3`"), ("ff_zstd", "tar_zstd", "freezeframe zstd -3"),
                     ("tar_classic", "tar_classic", "`tar -cf` then `bzip2 -9`"), ("ff_bzip2", "tar_classic", "freezeframe bzip2 -9")]:
    r = res[k]
    tp = data / 2**20 / r["wall"]
    ratio = res[ref]["wall"] / r["wall"]
    print(f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss']} | {sizes[k] / 2**20:.0f} | {tp:.0f} | {ratio:.2f}x |")
print()
print(f"Freeze window of the {gib:.1f} GiB container itself: {ffz['freeze_ms']:.1f} ms (zstd run), {ffb['freeze_ms']:.1f} ms (bzip2 run).\n")
print("| containers frozen together (SQLite writer active in one) | runs | p50 freeze ms | max freeze ms | of the max: to rest ms | of the max: snapshot ms |")
print("|---|---:|---:|---:|---:|---:|")
for n in (1, 10, 100):
    cs = []
    for f in glob.glob(os.path.join(out, f"freeze-{n}-*.json")):
        cs += json.load(open(f))["containers"]
    ms = [c["freeze_ms"] for c in cs]
    # Where the slowest window's time went: bringing that container to
    # rest, or the snapshot (a btrfs transaction commit can stall it).
    worst = max(cs, key=lambda c: c["freeze_ms"])
    w = worst["window"]
    rest = (w["frozen_ns"] - w["requested_ns"]) / 1e6
    snap = worst["timings"].get("snapshot_ms") or 0.0
    print(f"| {n} | {len(ms) // n} | {statistics.median(ms):.1f} | {max(ms):.1f} | {rest:.1f} | {snap:.1f} |")
PY
