//! LVM-thin bases (issue 14's stretch, DESIGN.md §7), inside the guest: a
//! run with `keep_base = true` keeps its thin snapshot; the next one asks
//! the pool what changed (`thin_delta` over a held metadata snapshot),
//! maps it to file ranges with FIEMAP, and reads changed files only around
//! those ranges. Every run restores byte for byte, on ext4 and on XFS,
//! after in-place writes, appends, punched holes, collapsed ranges, a
//! rename and (XFS) a reflinked file, none of which may be missed. A
//! metadata snapshot somebody else holds is left alone: the run reads
//! changed files whole and says why. A run killed while it holds the
//! pool's metadata snapshot has it released by its guardian; one killed
//! around the base swap leaves exactly one base.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{guest_vg, run, sh, TestLv, VG};
use crate::common::{CgVersion, TestCgroup};

/// Removes what the runs kept (the base: tagged ours, mounted under the
/// snapshot dir), then the pool, on drop: after the LV's own guard.
struct Kept {
    pool: String,
}

impl Drop for Kept {
    fn drop(&mut self) {
        sh("for m in $(awk '$5 ~ \"^/run/ff-snap/\" {print $5}' /proc/self/mountinfo); do umount $m; done; true");
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "lvremove -q -f -S 'lv_tags=freezeframe && pool_lv={p}' {VG}; lvremove -q -f {VG}/{p}; true",
                p = self.pool
            ))
            .status();
    }
}

fn config(dir: &Path, lv: &TestLv, cg: &TestCgroup, private: &Path) -> PathBuf {
    std::fs::write(dir.join("pw"), "guest\n").unwrap();
    let t = format!(
        "state_dir = \"{d}/state\"\n\
         [target]\nkind = \"repository\"\npath = \"{d}/runs\"\nrepository = \"{d}/repo\"\npassword_file = \"{d}/pw\"\n\
         [backup]\nfreeze_timeout = \"20s\"\n\
         [[volume]]\nname = \"thin\"\npath = \"{mnt}\"\nprovider = \"lvm-thin\"\nsnapshot_dir = \"/run/ff-snap\"\nkeep_base = true\n\
         [[container]]\nid = \"501\"\ncgroup = \"{cg}\"\nprivate = \"{p}\"\n",
        d = dir.display(),
        mnt = lv.mnt.display(),
        cg = cg.rel,
        p = private.display(),
    );
    let p = dir.join("freezeframe.toml");
    std::fs::write(&p, t).unwrap();
    p
}

/// One backup; its container's record.
fn backup(cfg: &Path) -> Value {
    let (code, out, err) = run(cfg, &["backup", "--all", "--json"], None);
    assert_eq!(code, 0, "backup: {out}{err}");
    let m: Value = serde_json::from_str(&out).unwrap();
    let r = m["containers"][0].clone();
    eprintln!("GUEST thin base run: {r}");
    r
}

fn restores_identically(cfg: &Path, dir: &Path, private: &Path, what: &str) {
    let to = dir.join(format!("restored-{what}"));
    let (code, out, err) = run(cfg, &["restore", "501", "--to", to.to_str().unwrap()], None);
    assert_eq!(code, 0, "{what}: restore: {out}{err}");
    sh(&format!("diff -r {} {}", private.display(), to.display()));
}

/// The tagged LVs of this pool: the kept base, only.
fn kept(pool: &str) -> Vec<String> {
    sh(&format!(
        "lvs --noheadings -o lv_name -S 'lv_tags=freezeframe && pool_lv={pool}' {VG}"
    ))
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

/// `xfs_io` commands on `file` (it works on ext4 too).
fn xfs_io(file: &Path, cmds: &[&str]) {
    let mut c = String::from("xfs_io");
    for x in cmds {
        c.push_str(&format!(" -c '{x}'"));
    }
    sh(&format!("{c} {}", file.display()));
}

fn case(fs: &str) {
    let pool = format!("ffbpool_{fs}");
    guest_vg();
    sh(&format!("lvcreate -q -y -W y -L 900m -T {VG}/{pool}"));
    let _kept = Kept { pool: pool.clone() };
    let lv = TestLv::new(&format!("ct_base_{fs}"), "600m", fs, Some(&pool));
    let dir = tempfile::tempdir().unwrap();
    let p = lv.mnt.join("501");
    std::fs::create_dir_all(p.join("etc")).unwrap();
    sh(&format!(
        "cd {} && dd if=/dev/urandom of=big bs=1M count=48 status=none \
         && dd if=/dev/urandom of=db bs=1M count=8 status=none \
         && dd if=/dev/urandom of=holey bs=1M count=4 status=none \
         && dd if=/dev/urandom of=shift bs=1M count=4 status=none \
         && dd if=/dev/urandom of=clone bs=1M count=2 status=none \
         && for i in 1 2 3 4 5 6 7 8; do echo conf $i > etc/c$i; done && echo m > moved && sync",
        p.display()
    ));
    let mut cg = TestCgroup::new(CgVersion::V2);
    cg.spawn(&["sleep", "1000"]);
    let cfg = config(dir.path(), &lv, &cg, &p);
    let (code, out, err) = run(&cfg, &["init"], None);
    assert_eq!(code, 0, "init: {out}{err}");

    let first = backup(&cfg)["repository"].clone();
    assert!(first.get("extents").is_none(), "{first}");
    let base1 = kept(&pool);
    assert_eq!(base1.len(), 1, "one base kept: {base1:?}");
    restores_identically(&cfg, dir.path(), &p, &format!("{fs}-1"));

    // In-place page writes, an append, a punched hole, a collapsed range
    // (data shifted down without being written), a rename.
    for seek in [100, 5000, 9000] {
        sh(&format!(
            "dd if=/dev/urandom of={}/big bs=4096 seek={seek} count=2 conv=notrunc status=none",
            p.display()
        ));
    }
    sh(&format!(
        "dd if=/dev/urandom bs=1M count=1 status=none >> {}/db",
        p.display()
    ));
    xfs_io(&p.join("holey"), &["fpunch 1048576 65536"]);
    xfs_io(&p.join("shift"), &["fcollapse 1048576 65536"]);
    sh(&format!("cd {} && mv moved moved2 && sync", p.display()));
    let second = backup(&cfg)["repository"].clone();
    let e = &second["extents"];
    assert!(e["not_used"].is_null(), "the base was used: {second}");
    // big, db, holey and shift cut around their changes.
    assert!(e["files"].as_u64().unwrap() >= 4, "{second}");
    let read = second["bytes_read"].as_u64().unwrap();
    let changed = e["changed_bytes"].as_u64().unwrap();
    // A whole read of the changed files is 63 MiB.
    assert!(
        read <= 4 * changed + (16 << 20) && read < 24 << 20,
        "read {read} bytes for {changed} in the pool's changed ranges: {second}"
    );
    let base2 = kept(&pool);
    assert_eq!(base2.len(), 1, "{base2:?}");
    assert_ne!(base1, base2, "the base moved on");
    // `recover` (no run alive) keeps the current base, and the operator
    // sees it.
    let (code, out, err) = run(&cfg, &["recover"], None);
    assert_eq!(code, 0, "recover: {out}{err}");
    assert_eq!(kept(&pool), base2, "recover removed the current base");
    let (code, out, err) = run(&cfg, &["list-containers", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["base"]["snapshot"], base2[0].as_str(), "{rows}");
    restores_identically(&cfg, dir.path(), &p, &format!("{fs}-2"));

    // Content replaced without a data write to the file's old blocks: a
    // reflink on XFS, a rewrite elsewhere on ext4. Then a metadata
    // snapshot held by somebody else: the run falls back, says why, and
    // leaves that hold alone.
    if fs == "xfs" {
        let src = format!("reflink {} 0 0 2097152", p.join("big").display());
        xfs_io(&p.join("clone"), &[&src]);
    } else {
        sh(&format!(
            "cd {} && dd if=big of=clone.new bs=1M count=2 status=none && mv clone.new clone",
            p.display()
        ));
    }
    sh("sync");
    let third = backup(&cfg)["repository"].clone();
    assert!(third["extents"]["not_used"].is_null(), "{third}");
    restores_identically(&cfg, dir.path(), &p, &format!("{fs}-3"));
    let tpool = format!("{VG}-{pool}-tpool");
    sh(&format!("dmsetup message {tpool} 0 reserve_metadata_snap"));
    sh(&format!(
        "dd if=/dev/urandom of={}/big bs=4096 seek=300 count=1 conv=notrunc status=none && sync",
        p.display()
    ));
    let fourth = backup(&cfg);
    let why = fourth["note"].as_str().unwrap_or_default().to_owned();
    let status = sh(&format!("dmsetup status {tpool}"));
    sh(&format!("dmsetup message {tpool} 0 release_metadata_snap"));
    assert!(
        why.contains("not used") && fourth["repository"].get("extents").is_none(),
        "a held metadata snapshot must make the run fall back: {fourth}"
    );
    assert!(
        status.split_whitespace().nth(6) != Some("-"),
        "the other holder's metadata snapshot was released: {status}"
    );
    restores_identically(&cfg, dir.path(), &p, &format!("{fs}-4"));

    // The kills test the engine and the pool, not the file system: once.
    if fs == "ext4" {
        kills(&cfg, dir.path(), &p, &pool, fs);
    }

    let (code, out, err) = run(&cfg, &["verify", "--read-data"], None);
    assert_eq!(code, 0, "verify --read-data: {out}{err}");
    assert_eq!(kept(&pool).len(), 1);
    drop(cg);
    drop(lv);
}

/// SIGKILL at the thin base's own fault points, each followed by
/// `recover` and a run that must be right.
fn kills(cfg: &Path, dir: &Path, p: &Path, pool: &str, fs: &str) {
    let tpool = format!("{VG}-{pool}-tpool");
    // SIGKILL while the run holds the pool's metadata snapshot: its
    // guardian releases it (before any `recover`), the killed run's
    // snapshot goes, the base stays, and the next run uses it.
    let base4 = kept(pool);
    sh(&format!(
        "dd if=/dev/urandom of={}/big bs=4096 seek=700 count=1 conv=notrunc status=none && sync",
        p.display()
    ));
    let (code, out, err) = run(cfg, &["backup", "--all"], Some("while-holding"));
    assert_eq!(code, -9, "the run was not killed at the fault: {out}{err}");
    let held = || {
        sh(&format!("dmsetup status {tpool}"))
            .split_whitespace()
            .nth(6)
            != Some("-")
    };
    super::guest_wait("the guardian to release the metadata snapshot", || !held());
    let (code, out, err) = run(cfg, &["recover"], None);
    assert_eq!(code, 0, "recover: {out}{err}");
    assert!(!held(), "recover took a metadata snapshot");
    assert_eq!(kept(pool), base4, "the killed run's snapshot or the base");
    let fifth = backup(cfg)["repository"].clone();
    assert!(fifth["extents"]["not_used"].is_null(), "{fifth}");
    restores_identically(cfg, dir, p, &format!("{fs}-5"));

    // SIGKILL around the base swap, after the run's backup was saved:
    // `recover` leaves exactly the recorded base (the old one before the
    // swap, the new one after). The next run is right either way: after
    // the swap it uses the base; before it, the killed run's backup was
    // read from a snapshot that is gone, so the backup before it (read
    // from the base that stayed) is the parent and the edit is read
    // around.
    for (i, point) in ["before-base-swap", "after-base-swap"].iter().enumerate() {
        let before = kept(pool);
        sh(&format!(
            "dd if=/dev/urandom of={}/big bs=4096 seek={} count=1 conv=notrunc status=none && sync",
            p.display(),
            900 + i
        ));
        let (code, out, err) = run(cfg, &["backup", "--all"], Some(point));
        assert_eq!(code, -9, "{point}: the run was not killed: {out}{err}");
        let (code, out, err) = run(cfg, &["recover"], None);
        assert_eq!(code, 0, "{point}: recover: {out}{err}");
        let now = kept(pool);
        assert_eq!(now.len(), 1, "{point}: one base left: {now:?}");
        match *point {
            "before-base-swap" => assert_eq!(now, before, "the old base stays"),
            _ => assert_ne!(now, before, "the new base is kept"),
        }
        let next = backup(cfg)["repository"].clone();
        assert!(next["extents"]["not_used"].is_null(), "{point}: {next}");
        if *point == "before-base-swap" {
            let edited = next["extents"]["files"].as_u64() > Some(0);
            assert!(edited, "{point}: the edit not read around: {next}");
        }
        restores_identically(cfg, dir, p, &format!("{fs}-{point}"));
    }
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_thin_base_reads_only_around_the_pools_changes_ext4() {
    case("ext4");
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_thin_base_reads_only_around_the_pools_changes_xfs() {
    case("xfs");
}
