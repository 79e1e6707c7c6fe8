# Sourced by scripts/demo.sh and bench/run.sh: a loop-backed btrfs volume
# and cgroups of our own, made and removed. Removal touches only what these
# functions made.

# ff_btrfs_up WORK SIZE: WORK/vol.img of SIZE on a loop device (its name in
# FF_LOOP), btrfs mounted on WORK/mnt, the volume subvolume WORK/mnt/ct and
# the snapshot folder WORK/mnt/.freezeframe-snapshots.
ff_btrfs_up() {
    local work=$1 size=$2
    truncate -s "$size" "$work/vol.img"
    FF_LOOP=$(losetup -f --show "$work/vol.img")
    mkfs.btrfs -q "$FF_LOOP" >/dev/null
    mkdir -p "$work/mnt"
    mount "$FF_LOOP" "$work/mnt"
    btrfs -q subvolume create "$work/mnt/ct"
    mkdir "$work/mnt/.freezeframe-snapshots"
}

# ff_btrfs_down WORK [SUBVOLUME...]: deletes the snapshots left in the
# snapshot folder (a repository run keeps its last one as the base) with
# their owner records, and the extra subvolumes named; unmounts, frees
# FF_LOOP.
ff_btrfs_down() {
    local work=$1 s
    shift
    if mountpoint -q "$work/mnt"; then
        rm -f "$work"/mnt/.freezeframe-snapshots/*.owner
        for s in "$work"/mnt/.freezeframe-snapshots/* "$@"; do
            [ -d "$s" ] && btrfs -q subvolume delete "$s" >/dev/null
        done
        umount "$work/mnt"
    fi
    [ -n "${FF_LOOP:-}" ] && losetup -d "$FF_LOOP"
    FF_LOOP=""
}

# ff_cgroups_down BASE [PID...]: thaws and ends every process in the child
# cgroups of BASE (cgroup.kill, grandchildren included), waits for the PIDs
# we started, removes the cgroups (retrying while the last processes exit).
ff_cgroups_down() {
    local base=$1 d p
    shift
    [ -d "$base" ] || return 0
    for d in "$base"/*/; do
        [ -e "$d/cgroup.freeze" ] || continue
        echo 0 > "$d/cgroup.freeze"
        echo 1 > "$d/cgroup.kill"
    done
    for p in "$@"; do wait "$p" 2>/dev/null; done
    for d in "$base"/*/; do
        [ -e "$d/cgroup.procs" ] || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            rmdir "$d" 2>/dev/null && break
            [ -e "$d" ] || break
            sleep 0.1
        done
    done
    rmdir "$base" 2>/dev/null
}
