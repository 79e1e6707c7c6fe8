# Sourced by the benchmarks (run.sh, repo.sh): their common set-up and the
# generated container both measure.

# ff_bench_setup NAME: installs what the benchmarks need, builds the release
# binary ($ff), and makes a work folder ($work, removed on exit with the
# btrfs volume, the cgroups under $v2/$cgbase and the processes in $pids).
ff_bench_setup() {
    local name=$1 repo
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    . "$repo/scripts/deps.sh"
    . "$repo/scripts/lib.sh"
    ff_require_root
    ff_install_deps
    command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/freezeframe-target}
    cargo build --release --manifest-path "$repo/Cargo.toml" -q
    ff="$CARGO_TARGET_DIR/release/freezeframe"
    work=$(mktemp -d "/var/tmp/ff-$name.XXXXXX")
    v2=$(findmnt -n -o TARGET -t cgroup2 | head -n1)
    cgbase="freezeframe-$name-$$"
    pids=()
    trap ff_bench_cleanup EXIT
}

ff_bench_cleanup() {
    set +e
    ff_cgroups_down "$v2/$cgbase" "${pids[@]}"
    ff_btrfs_down "$work" "$work/mnt/ref" "$work/mnt/pristine"
    rm -rf "$work"
}

# ff_bench_volume SIZE: the btrfs volume on a loop device (ff_btrfs_up)
# that reads with direct I/O. A disk moves blocks into the page cache by
# DMA. A loop device without direct I/O copies each one out of the
# backing file's page cache instead: a profile showed that memcpy, in the
# loop workers, as ~15 % of the machine's CPU during a backup, paid by
# every tool alike. With direct I/O every tool reads its fresh snapshot
# from the disk, as on a real host.
ff_bench_volume() {
    ff_btrfs_up "$work" "$1"
    losetup --direct-io=on "$FF_LOOP"
}

# ff_bench_start_big: one sleeping process in its own cgroup
# $v2/$cgbase/big (its PID added to $pids), container `big`'s.
ff_bench_start_big() {
    mkdir -p "$v2/$cgbase/big"
    sh -c 'echo $$ > "$1/cgroup.procs"; exec sleep 100000' sh "$v2/$cgbase/big" &
    pids+=($!)
}

# ff_bench_config BIG TABLES: a config ($conf, exported as
# FREEZEFRAME_CONFIG) with the bench volume, container `big` at BIG, and
# TABLES (TOML: the target and anything else).
ff_bench_config() {
    conf="$work/freezeframe.toml"
    cat > "$conf" <<EOF
state_dir = "$work/state"

[[volume]]
name = "bench"
path = "$work/mnt/ct"
provider = "btrfs"

[[container]]
id = "big"
cgroup = "$cgbase/big"
private = "$1"

$2
EOF
    export FREEZEFRAME_CONFIG="$conf"
}

# ff_bench_repo_container BIG: container `big` at BIG
# (ff_bench_start_big), a config backing it up into $work/repo-ff, and the
# password ($pass) and cache settings restic and borg use.
ff_bench_repo_container() {
    ff_bench_start_big
    pass="$work/pass"
    echo "bench-password" > "$pass"
    ff_bench_config "$1" "[target]
kind = \"repository\"
path = \"$work/backups\"
repository = \"$work/repo-ff\"
password_file = \"$pass\""
    export RESTIC_PASSWORD_FILE="$pass" RESTIC_CACHE_DIR="$work/restic-cache"
    export BORG_PASSPHRASE=bench-password BORG_BASE_DIR="$work/borg-base"
}

# measure LABEL COMMAND...: prints "LABEL wall user sys rss_kib".
measure() {
    local label=$1; shift
    local t; t=$( { /usr/bin/time -f "%e %U %S %M" "$@" > /dev/null; } 2>&1 | tail -n1)
    echo "$label $t"
}

# ff_generate_container DIR SIZE_GIB: a root-like tree of many small files
# (40 %, from this host's /usr), a SQLite database (30 %) and compressible
# logs (30 %).
ff_generate_container() {
    local big=$1 size_gib=$2
    local budget=$((size_gib * 1024 * 1024 * 1024))
    mkdir -p "$big/usr" "$big/var/lib/db" "$big/var/log"
    # 40 %: a root-like tree of many small files (this host's /usr)
    tar -C /usr -cf - lib share 2>/dev/null | head -c $((budget * 4 / 10)) | tar -C "$big/usr" -xf - 2>/dev/null || true
    # 30 %: a SQLite database, 30 %: logs
    python3 - "$big" $((budget * 3 / 10)) <<'PY'
import os, random, sqlite3, sys
root, quota = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(os.path.join(root, "var/lib/db/app.db"))
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB)")
rnd = random.Random(1)
row = 0
while os.path.getsize(os.path.join(root, "var/lib/db/app.db")) < quota:
    con.executemany("INSERT INTO t (k, v) VALUES (?, ?)",
        [("key-%d" % (row + i), rnd.randbytes(256) + bytes(768)) for i in range(20000)])
    con.commit()
    row += 20000
con.close()
words = "GET POST /api/v1/items /static/app.js 200 404 500 user=alice user=bob latency_ms=".split()
with open(os.path.join(root, "var/log/app.log"), "w") as f:
    n = 0
    while n < quota:
        line = "2026-11-24T10:%02d:%02d.%03dZ %s\n" % (rnd.randrange(60), rnd.randrange(60), rnd.randrange(1000),
                                                    " ".join(rnd.choice(words) + str(rnd.randrange(100)) for _ in range(8)))
        f.write(line)
        n += len(line)
PY
}
