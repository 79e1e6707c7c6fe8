#!/usr/bin/env bash
# freezeframe extent-level incremental benchmark (DESIGN.md §7): one large
# file of SIZE GiB in a container (4 KiB pages, half random, half zeros,
# like a database's), backed up once, then changed by 16 MiB of random
# page writes and 8 MiB appended, then backed up again. The second backup
# is measured for freezeframe (base snapshot kept, only the changed
# ranges read), restic and borg (Debian, default settings, their caches
# from the first backup), and `btrfs send -p BASE NEW | zstd -1` as the
# physical reference. Wall, CPU, bytes read from the disk (/usr/bin/time
# %I: the loop device uses direct I/O, so every read of a fresh snapshot
# is a disk read) and what each stored. REPS repetitions per size, median
# (range); REPS is one count, or one per size ("3 3 1"). Prints a
# Markdown table and writes the plot (wall time against file size per
# tool) to OUT_PNG. Not a test.
# PATTERN=clustered writes the 16 MiB as 16 runs of 1 MiB instead of 4096
# scattered pages. CHUNK_SIZE sets freezeframe's target.chunk_size
# (default restic's 1M; "64K" suits scattered page writes).
# usage: [PATTERN=scattered|clustered] [CHUNK_SIZE=64K] bash bench/extents.sh "1 4 16" [REPS] [OUT_PNG]
set -euo pipefail
sizes=${1:-"1 4"}
reps=${2:-3}
png=${3:-}
pattern=${PATTERN:-scattered}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
ff_bench_setup xbench
command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c "import matplotlib" 2>/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null

results="$work/results"
: > "$results"

# measure_io LABEL COMMAND...: "LABEL wall cpu read_bytes".
measure_io() {
    local label=$1; shift
    local t; t=$( { /usr/bin/time -f "%e %U %S %I" "$@" > /dev/null; } 2>&1 | tail -n1)
    read -r wall user sys inblocks <<< "$t"
    echo "$label $wall $(awk "BEGIN { print $user + $sys }") $((inblocks * 512))"
}

read -r -a rep_list <<< "$reps"
i=0
for size in $sizes; do
    n=${rep_list[$i]:-${rep_list[-1]}}
    i=$((i + 1))
    ff_bench_volume "$((size + 3))G"
    big="$work/mnt/ct/big"
    mkdir -p "$big"
    echo "generating a ${size} GiB file..." >&2
    /usr/bin/python3 - "$big/data.db" "$size" <<'PY'
import os, sys
path, gib = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    for _ in range(gib * 1024):
        block = bytearray()
        for _ in range(256):  # 1 MiB of 4 KiB pages
            block += os.urandom(2048) + bytes(2048)
        f.write(block)
PY
    sync
    btrfs -q subvolume snapshot -r "$work/mnt/ct" "$work/mnt/pristine"
    ff_bench_repo_container "$big"
    # [target] is the config's last table.
    [ -n "${CHUNK_SIZE:-}" ] && echo "chunk_size = \"$CHUNK_SIZE\"" >> "$FREEZEFRAME_CONFIG"
    for rep in $(seq 1 "$n"); do
        echo "size $size GiB, repetition $rep of $n..." >&2
        # The data as generated, new repositories, no bases.
        [ -d "$work/mnt/ref1" ] && btrfs -q subvolume delete "$work/mnt/ref1"
        [ -d "$work/mnt/ref2" ] && btrfs -q subvolume delete "$work/mnt/ref2"
        for s in "$work"/mnt/.freezeframe-snapshots/ff-*; do
            [ -d "$s" ] && btrfs -q subvolume delete "$s"
        done
        rm -f "$work"/mnt/.freezeframe-snapshots/*.owner
        btrfs -q subvolume delete "$work/mnt/ct"
        btrfs -q subvolume snapshot "$work/mnt/pristine" "$work/mnt/ct"
        rm -rf "$work/repo-ff" "$work/repo-restic" "$work/repo-borg" "$work/state" \
            "$work/backups" "$work/restic-cache" "$work/borg-base"
        "$ff" init > /dev/null
        restic -r "$work/repo-restic" init -q
        borg init -e repokey "$work/repo-borg" 2>/dev/null
        # First backups (not measured): each tool's starting point.
        btrfs -q subvolume snapshot -r "$work/mnt/ct" "$work/mnt/ref1"
        "$ff" backup big > /dev/null
        restic -r "$work/repo-restic" backup -q --host bench "$work/mnt/ref1/big" > /dev/null
        borg create "$work/repo-borg::run1" "$work/mnt/ref1/big" 2>/dev/null
        for r in ff restic borg; do
            echo "$size $rep size1 $r $(du -sb "$work/repo-$r" | cut -f1)" >> "$results"
        done
        # The change: 16 MiB of random 4 KiB page writes, 8 MiB appended.
        /usr/bin/python3 - "$big/data.db" "$pattern" <<'PY'
import os, random, sys
path, pattern = sys.argv[1], sys.argv[2]
size = os.path.getsize(path)
rnd = random.Random(7)
runs, pages = (4096, 1) if pattern == "scattered" else (16, 256)
with open(path, "r+b") as f:
    for _ in range(runs):
        f.seek(rnd.randrange(size // 4096 - pages) * 4096)
        f.write(b"".join(os.urandom(2048) + bytes(2048) for _ in range(pages)))
    f.seek(0, 2)
    f.write(os.urandom(8 << 20))
PY
        sync
        btrfs -q subvolume snapshot -r "$work/mnt/ct" "$work/mnt/ref2"
        sync; echo 3 > /proc/sys/vm/drop_caches
        measure_io "$size $rep ff" "$ff" backup big >> "$results"
        m=$(ls -d "$work"/backups/*/ | tail -n1)manifest.json
        /usr/bin/python3 -c "
import json,sys
c=json.load(open('$m'))['containers'][0]['repository']
e=c.get('extents') or {}
print('$size $rep ffdetail', c['bytes_read'], e.get('changed_bytes', 0), e.get('files', 0), e.get('not_used') is None)" >> "$results"
        sync; echo 3 > /proc/sys/vm/drop_caches
        measure_io "$size $rep restic" restic -r "$work/repo-restic" backup -q --host bench "$work/mnt/ref2/big" >> "$results"
        sync; echo 3 > /proc/sys/vm/drop_caches
        measure_io "$size $rep borg" borg create "$work/repo-borg::run2" "$work/mnt/ref2/big" >> "$results"
        sync; echo 3 > /proc/sys/vm/drop_caches
        measure_io "$size $rep send" sh -c "btrfs send -q -p '$work/mnt/ref1' '$work/mnt/ref2' | zstd -q -1 > '$work/send.zst'" >> "$results"
        for r in ff restic borg; do
            echo "$size $rep size2 $r $(du -sb "$work/repo-$r" | cut -f1)" >> "$results"
        done
        echo "$size $rep size2 send $(stat -c %s "$work/send.zst")" >> "$results"
        rm -f "$work/send.zst"
    done
    ff_cgroups_down "$v2/$cgbase" "${pids[@]}" || true
    pids=()
    mkdir -p "$v2/$cgbase"
    rm -f "$work"/mnt/.freezeframe-snapshots/*.owner
    ff_btrfs_down "$work" "$work/mnt/ref1" "$work/mnt/ref2" "$work/mnt/pristine" "$work/mnt/ct" || true
    rm -rf "$work/mnt" "$work/vol.img" "$work/repo-ff" "$work/repo-restic" "$work/repo-borg" \
        "$work/state" "$work/backups" "$work/restic-cache" "$work/borg-base"
done

/usr/bin/python3 - "$results" "$reps" "$png" <<'PY'
import os, statistics, sys
path, reps, png = sys.argv[1], sys.argv[2], sys.argv[3]
runs, sizes, detail = {}, {}, {}
for line in open(path):
    f = line.split()
    size, rep, kind = int(f[0]), f[1], f[2]
    if kind in ("size1", "size2"):
        sizes.setdefault((size, f[3], kind), []).append(int(f[4]))
    elif kind == "ffdetail":
        detail.setdefault(size, []).append((int(f[3]), int(f[4]), int(f[5]), f[6] == "True"))
    else:
        runs.setdefault((size, kind), []).append((float(f[3]), float(f[4]), int(f[5])))
names = {"ff": "freezeframe", "restic": "restic", "borg": "borg", "send": "btrfs send -p \\| zstd -1"}
med = lambda xs: statistics.median(xs)
what = "4096 random 4 KiB pages" if os.environ.get("PATTERN", "scattered") == "scattered" else "16 runs of 1 MiB at random offsets"
chunks = os.environ.get("CHUNK_SIZE") or "1M"
print(f"Second backup after 16 MiB written ({what}) and 8 MiB appended; freezeframe with chunk_size = {chunks}; median of the repetitions ({reps} per size; wall range).\n")
print("| file | tool | wall s | CPU s | read from disk MiB | stored MiB | wall vs restic |")
print("|---:|---|---:|---:|---:|---:|---:|")
all_sizes = sorted({s for s, _ in runs})
for s in all_sizes:
    rwall = med([r[0] for r in runs[(s, "restic")]])
    for t in ("ff", "restic", "borg", "send"):
        v = runs.get((s, t))
        if not v:
            continue
        walls = [r[0] for r in v]
        if t == "send":
            stored = med(sizes[(s, "send", "size2")])
        else:
            stored = med([b - a for a, b in zip(sizes[(s, t, "size1")], sizes[(s, t, "size2")])])
        print(f"| {s} GiB | {names[t]} | {med(walls):.2f} [{min(walls):.2f}–{max(walls):.2f}] | {med([r[1] for r in v]):.2f} | "
              f"{med([r[2] for r in v]) / 2**20:.0f} | {stored / 2**20:.1f} | {rwall / med(walls):.1f}x |")
print()
for s in all_sizes:
    d = detail[s]
    print(f"{s} GiB: freezeframe read {med([x[0] for x in d]) / 2**20:.1f} MiB of file data for "
          f"{med([x[1] for x in d]) / 2**20:.1f} MiB in the kernel's changed ranges "
          f"({med([x[0] / max(x[1], 1) for x in d]):.2f}x); extent path used in {sum(x[3] for x in d)} of {len(d)} runs")
if png:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for t in ("ff", "restic", "borg", "send"):
        xs = [s for s in all_sizes if (s, t) in runs]
        ax.plot(xs, [med([r[0] for r in runs[(s, t)]]) for s in xs], marker="o", label=names[t].replace("\\|", "|"))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(all_sizes)
    ax.set_xticklabels([f"{s} GiB" for s in all_sizes])
    ax.set_xlabel("size of the changed file")
    ax.set_ylabel("second backup, wall s (median)")
    ax.set_title("16 MiB written (" + os.environ.get("PATTERN", "scattered") + ") + 8 MiB appended, chunk_size "
                 + (os.environ.get("CHUNK_SIZE") or "1M"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"\nplot: {png}")
PY
