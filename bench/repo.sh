#!/usr/bin/env bash
# freezeframe repository benchmark: incremental, deduplicated backups of the
# generated ~SIZE GiB container (bench/common.sh) into a restic-format
# repository, against restic and borg (Debian packages, their default
# settings: restic compression auto, borg repokey + lz4), same data, one run:
#   1. first backup,
#   2. second backup after changing ~1 % (logs appended, database pages
#      rewritten, files added),
#   3. full restore of the second backup.
# Wall, CPU, peak RSS and repository size for each. restic and borg read a
# read-only btrfs snapshot of the volume at a fixed path (so their file
# caches see unchanged files as unchanged); freezeframe takes its own.
# Each first read of a fresh snapshot comes from the disk (the loop device
# uses direct I/O); the floor row reads after restic and borg, warm.
# The machines this runs on are noisy (shared cores): the whole sequence
# runs REPS times (default 3) on the same generated data, with new
# repositories each time, and the table gives the median and the range.
# Prints a Markdown table (see docs/BENCHMARKS.md). Not a test.
# usage: sudo bash bench/repo.sh [SIZE_GIB] [REPS]
set -euo pipefail
size_gib=${1:-2}
reps=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
. "$here/common.sh"
ff_bench_setup rbench

ff_bench_volume "$((size_gib * 2 + 2))G"
mkdir -p "$work/restore" "$work/backups"
mkdir "$v2/$cgbase"

echo "generating ~${size_gib} GiB of data..." >&2
big="$work/mnt/ct/big"
ff_generate_container "$big" "$size_gib"
sync
data_bytes=$(du -sb "$big" | cut -f1)
# Each repetition starts from this copy of the generated data.
btrfs -q subvolume snapshot -r "$work/mnt/ct" "$work/mnt/pristine"

ff_bench_repo_container "$big"
restic_repo="$work/repo-restic"
borg_repo="$work/repo-borg"
fresh() { # the generated data as it was, new repositories, empty caches
    if [ "$1" -gt 1 ]; then
        btrfs -q subvolume delete "$work/mnt/ct"
        btrfs -q subvolume snapshot "$work/mnt/pristine" "$work/mnt/ct"
    fi
    rm -rf "$work/repo-ff" "$restic_repo" "$borg_repo" "$work/state" "$work/restic-cache" "$work/borg-base"
    "$ff" init > /dev/null
    restic -r "$restic_repo" init -q
    borg init -e repokey "$borg_repo" 2>/dev/null
}

ref() { # a read-only snapshot at a fixed path, for restic and borg
    [ -d "$work/mnt/ref" ] && btrfs -q subvolume delete "$work/mnt/ref"
    btrfs -q subvolume snapshot -r "$work/mnt/ct" "$work/mnt/ref"
}
results="$work/results"
sizes="$work/sizes"

backup_all() { # run number: each tool backs up once; repository sizes after
    local n=$1
    ref
    # Each tool starts with a cold page cache: the snapshots share their
    # metadata blocks (the trees, the checksums), so a tool that ran
    # second would otherwise find the first one's reads cached.
    sync; echo 3 > /proc/sys/vm/drop_caches
    measure "$rep ff $n" "$ff" backup big >> "$results"
    cp "$(ls -d "$work"/backups/*/ | tail -n1)manifest.json" "$work/ff$n.json"
    sync; echo 3 > /proc/sys/vm/drop_caches
    measure "$rep restic $n" restic -r "$restic_repo" backup -q --host bench "$work/mnt/ref/big" >> "$results"
    sync; echo 3 > /proc/sys/vm/drop_caches
    measure "$rep borg $n" borg create "$borg_repo::run$n" "$work/mnt/ref/big" >> "$results"
    # The floor: the same tree through tar and zstd -1 on every core (no
    # dedup, no encryption; the page cache is warm by now).
    measure "$rep tarzstd $n" sh -c "tar -C '$work/mnt/ref/big' -cf - . | zstd -q -T0 -1 > '$work/floor.tar.zst'" >> "$results"
    for r in ff restic borg; do echo "$r $n $(du -sb "$work/repo-$r" | cut -f1)" >> "$sizes"; done
    echo "tarzstd $n $(stat -c %s "$work/floor.tar.zst")" >> "$sizes"
    rm -f "$work/floor.tar.zst"
}
: > "$results"
for rep in $(seq 1 "$reps"); do
echo "repetition $rep of $reps..." >&2
fresh "$rep"
backup_all 1

# ~1 %: append logs, rewrite database pages, add files
python3 - "$big" "$data_bytes" <<'PY'
import os, random, sqlite3, sys
root, total = sys.argv[1], int(sys.argv[2])
share = total // 300          # a third of 1 % each
rnd = random.Random(2)
with open(os.path.join(root, "var/log/app.log"), "a") as f:
    n = 0
    while n < share:
        line = "2026-11-25T03:%02d:%02d new entry %d\n" % (rnd.randrange(60), rnd.randrange(60), n)
        f.write(line)
        n += len(line)
con = sqlite3.connect(os.path.join(root, "var/lib/db/app.db"))
(rows,) = con.execute("SELECT max(id) FROM t").fetchone()
for _ in range(share // 1024):
    con.execute("UPDATE t SET v = ? WHERE id = ?", (rnd.randbytes(256) + bytes(768), rnd.randrange(1, rows)))
con.commit()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
os.makedirs(os.path.join(root, "srv/new"), exist_ok=True)
for i in range(share // (256 << 10)):
    with open(os.path.join(root, "srv/new/file%04d" % i), "wb") as f:
        f.write(rnd.randbytes(128 << 10) + bytes(128 << 10))
PY
sync
backup_all 2

sync; echo 3 > /proc/sys/vm/drop_caches
measure "$rep ff restore" "$ff" restore big --to "$work/restore/ff" >> "$results"
rm -rf "$work/restore/ff" "$work/restore/ff.conf"
sync; echo 3 > /proc/sys/vm/drop_caches
measure "$rep restic restore" restic -r "$restic_repo" restore latest --target "$work/restore/restic" >> "$results"
rm -rf "$work/restore/restic"
sync; echo 3 > /proc/sys/vm/drop_caches
mkdir -p "$work/restore/borg"
measure "$rep borg restore" sh -c "cd '$work/restore/borg' && borg extract '$borg_repo::run2'" >> "$results"
rm -rf "$work/restore/borg"
done

python3 - "$work" "$data_bytes" "$(nproc)" "$reps" <<'PY'
import json, os, statistics, sys
work, data, cores, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs, sizes = {}, {}
for line in open(os.path.join(work, "results")):
    _, tool, step, wall, user, sys_, rss = line.split()
    runs.setdefault((tool, step), []).append(dict(wall=float(wall), cpu=float(user) + float(sys_), rss=int(rss) // 1024))
res = {}
for k, v in runs.items():
    walls = [r["wall"] for r in v]
    res[k] = dict(wall=statistics.median(walls), lo=min(walls), hi=max(walls),
                  cpu=statistics.median(r["cpu"] for r in v), rss=max(r["rss"] for r in v))
for line in open(os.path.join(work, "sizes")):
    tool, step, b = line.split()
    sizes[(tool, step)] = int(b)  # the last repetition's
print(f"Data: {data / 2**30:.2f} GiB on a loop-backed btrfs volume, {cores} cores; second run after changing ~1 %; "
      f"median of {reps} repetitions (wall range in brackets), peak RSS the highest.\n")
print("| step | tool | wall s | CPU s | CPU s/GiB | peak RSS MiB | repository MiB | wall vs restic | size vs restic |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
names = {"ff": "freezeframe", "restic": "restic", "borg": "borg", "tarzstd": "tar \\| zstd -T0 -1 (floor)"}
gib = data / 2**30
for step, label in [("1", "first backup"), ("2", "second backup"), ("restore", "full restore")]:
    for tool in ("ff", "restic", "borg", "tarzstd"):
        if (tool, step) not in res:
            continue
        r = res[(tool, step)]
        ref = res[("restic", step)]
        size = sizes.get((tool, step)) if step != "restore" else sizes.get((tool, "2"))
        rsize = sizes.get(("restic", step)) if step != "restore" else sizes.get(("restic", "2"))
        print(f"| {label} | {names[tool]} | {r['wall']:.1f} [{r['lo']:.1f}–{r['hi']:.1f}] | {r['cpu']:.1f} | {r['cpu'] / gib:.1f} | {r['rss']} | {size / 2**20:.0f} | "
              f"{ref['wall'] / r['wall']:.2f}x | {size / rsize:.3f} |")
PY

python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
print()
for run in ("1", "2"):
    c = json.load(open(os.path.join(work, f"ff{run}.json")))["containers"][0]
    r = c["repository"]
    print(f"freezeframe run {run} (last repetition): freeze window {c['freeze_ms']:.1f} ms; repository step {r['duration_ms'] / 1000:.1f} s, "
          f"(files {r['files_new']} new, {r['files_changed']} changed, {r['files_unchanged']} unchanged; "
          f"read {r['bytes_read'] / 2**20:.0f} MiB, added {r['bytes_added'] / 2**20:.0f} MiB, stored {r['bytes_added_packed'] / 2**20:.0f} MiB)")
PY
