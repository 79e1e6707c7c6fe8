#!/usr/bin/env bash
# freezeframe demo, end to end: installs what it needs, builds, creates a
# loop-backed btrfs volume, starts 3 cgroup "containers" with real workloads
# (a SQLite writer in WAL mode, a log appender, an idle shell), backs them up,
# verifies, restores one into a new folder and as a new container, checks
# the restored database,
# does the same with a restic-format repository target (two incremental
# runs, list, verify, restore, prune --dry-run),
# prints the freeze windows, and removes everything it created.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
. "$here/deps.sh"
. "$here/lib.sh"
ff_require_root
ff_install_deps

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/freezeframe-target}
echo "== building (release)"
cargo build --release --manifest-path "$repo/Cargo.toml" -q
ff="$CARGO_TARGET_DIR/release/freezeframe"

work=$(mktemp -d /var/tmp/ff-demo.XXXXXX)
v2=$(findmnt -n -o TARGET -t cgroup2 | head -n1)
[ -n "$v2" ] || { echo "no cgroup v2 mount found" >&2; exit 1; }
cgbase="freezeframe-demo-$$"
pids=()

cleanup() {
    set +e
    [ -d "$work/browse" ] && "$ff" umount "$work/browse" >/dev/null 2>&1
    ff_cgroups_down "$v2/$cgbase" "${pids[@]}"
    ff_btrfs_down "$work"
    rm -rf "$work"
}
trap cleanup EXIT

echo "== creating a 2 GiB loop-backed btrfs volume in $work"
ff_btrfs_up "$work" 2G
mkdir -p "$work/etc" "$work/backups" "$work/status"

echo "== starting 3 containers (cgroups under $v2/$cgbase)"
mkdir "$v2/$cgbase"
start() { # id command...
    local id=$1; shift
    mkdir -p "$v2/$cgbase/$id" "$work/mnt/ct/$id/etc" "$work/mnt/ct/$id/var/log"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$work/mnt/ct/$id/etc/passwd"
    printf 'root:x:0:\n' > "$work/mnt/ct/$id/etc/group"
    printf 'NAME=%s\nWORKLOAD=%s\n' "$id" "$*" > "$work/etc/$id.conf"
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$v2/$cgbase/$id" "$@" &
    pids+=($!)
}
start 101 python3 "$here/workloads/sqlite_writer.py" "$work/mnt/ct/101/db.sqlite" "$work/status/101"
start 102 sh "$here/workloads/log_appender.sh" "$work/mnt/ct/102/var/log/app.log"
start 103 sh -c 'while :; do sleep 1; done'
sleep 2

cat > "$work/freezeframe.toml" <<TOML
state_dir = "$work/state"

[target]
path = "$work/backups"

[backup]
compress = "zstd"
freeze_timeout = "5s"

[[volume]]
name = "demo"
path = "$work/mnt/ct"
provider = "btrfs"

[[container]]
id = "101"
cgroup = "$cgbase/101"
private = "$work/mnt/ct/101"
config = "$work/etc/101.conf"

[[container]]
id = "102"
cgroup = "$cgbase/102"
private = "$work/mnt/ct/102"
config = "$work/etc/102.conf"

[[container]]
id = "103"
cgroup = "$cgbase/103"
private = "$work/mnt/ct/103"
config = "$work/etc/103.conf"
TOML
export FREEZEFRAME_CONFIG="$work/freezeframe.toml"

echo "== plan"
"$ff" backup --all --dry-run
echo "== backup (strategy group: one freeze window for the volume)"
"$ff" backup --all
sleep 1
echo "== backup (strategy each, bzip2)"
"$ff" backup --all --strategy each --compress bzip2
echo "== list"
"$ff" list
echo "== verify"
"$ff" verify
echo "== restore 101 into $work/restore/101"
"$ff" restore 101 --to "$work/restore/101"
echo "restored database: integrity $(sqlite3 "$work/restore/101/db.sqlite" 'PRAGMA integrity_check'), $(sqlite3 "$work/restore/101/db.sqlite" 'SELECT count(*) FROM t') rows"
echo "== restore 101 as a new container 201 (cgroup: the entry to add is printed)"
"$ff" restore 101 --as 201 --to "$work/restore/201"
echo "restored copy: integrity $(sqlite3 "$work/restore/201/db.sqlite" 'PRAGMA integrity_check')"
echo "== GNU tar reads the archive too"
run=$(ls "$work/backups" | head -n1)
# Listed to a file first: `tar | head` fails under pipefail when head
# closes the pipe before tar is done (SIGPIPE, exit 141).
tar --zstd -tvf "$work/backups/$run/102.tar.zst" > "$work/listing"
head -n 5 "$work/listing"
echo "== mount every backup read-only (FUSE)"
mkdir "$work/browse"
"$ff" mount "$work/browse"
ls "$work/browse" "$work/browse/101"
# (The restored copy was opened by sqlite3 above, which may have rolled
# back a journal it found: compare with what the backup holds.)
"$ff" cat 101 db.sqlite | cmp - "$work/browse/101/latest/db.sqlite" \
    && echo "db.sqlite through the mount is what \`freezeframe cat\` reads, byte for byte"
"$ff" umount "$work/browse"
echo "== freeze windows (ms)"
for f in "$work"/backups/*/manifest.json; do
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["run"], m["strategy"], " ".join("%s=%.1f" % (c["id"], c["freeze_ms"] or -1) for c in m["containers"]))' "$f"
done
echo "== repository target: incremental, deduplicated, restic format"
# The same containers into a restic-format repository: the second run only
# reads and stores what changed since the first.
sed -e "s|^path = \"$work/backups\"|path = \"$work/repo-runs\"\nkind = \"repository\"\nrepository = \"$work/repo\"\npassword_file = \"$work/repo.pass\"|" \
    "$work/freezeframe.toml" > "$work/freezeframe-repo.toml"
echo "demo-password" > "$work/repo.pass"
export FREEZEFRAME_CONFIG="$work/freezeframe-repo.toml"
"$ff" init
"$ff" backup --all
sleep 1
"$ff" backup --all
"$ff" list
"$ff" verify --read-data
"$ff" restore 101 --to "$work/restore/101-repo"
echo "restored database: integrity $(sqlite3 "$work/restore/101-repo/db.sqlite" 'PRAGMA integrity_check')"
"$ff" prune --keep-last 1 --dry-run | tail -n 2
echo "== done; cleaning up"
