//! Nothing that is not freezeframe's is ever deleted: the orphan sweep that
//! `recover` and every backup run removes a snapshot only when it has the
//! exact `ff-<run>-<volume>` form, is a read-only snapshot of that very
//! volume, and its recorded maker is gone. Two configs sharing one volume
//! (each its own state dir) leave each other's snapshots alone.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{guardians, kill9, privileged, sh, CgVersion, Ct, Env, LoopBtrfs, TestCgroup};

struct Bed {
    cgs: Vec<TestCgroup>,
    vol: LoopBtrfs,
}

fn bed(ids: &[&str]) -> (Bed, Vec<Ct>) {
    let vol = LoopBtrfs::new("512M");
    let mut cgs = Vec::new();
    let mut cts = Vec::new();
    for id in ids {
        let mut cg = TestCgroup::new(CgVersion::V2);
        cg.spawn(&["sleep", "1000"]);
        let private = vol.volume().join(id);
        std::fs::create_dir(&private).unwrap();
        for i in 0..20 {
            std::fs::write(private.join(format!("f{i}")), id.repeat(50_000)).unwrap();
        }
        cts.push(Ct {
            id: (*id).into(),
            cgroup: cg.rel.clone(),
            private,
            config: None,
        });
        cgs.push(cg);
    }
    (Bed { cgs, vol }, cts)
}

fn owner_json(pid: u32, started: u64, boot: &str) -> String {
    format!(
        r#"{{"pid":{pid},"started":{started},"boot":"{boot}","state_dir":"/var/lib/elsewhere","run":"2020-01-01T000000Z-h"}}"#
    )
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .replace('-', "")
}

/// Start time (field 22 of /proc/PID/stat) of a live process.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(19).unwrap().parse().unwrap()
}

/// A read-only snapshot of `source` at `snaps/name`.
fn snapshot(source: &Path, snaps: &Path, name: &str) -> PathBuf {
    let dest = snaps.join(name);
    sh(&format!(
        "btrfs -q subvolume snapshot -r {} {}",
        source.display(),
        dest.display()
    ));
    dest
}

#[test]
fn the_sweep_removes_only_abandoned_snapshots_of_its_own_volume() {
    if !privileged() {
        return;
    }
    let (b, cts) = bed(&["101"]);
    let env = Env::new(&b.vol.volume(), &cts, "");
    env.backup_json(&["--all"]);
    let snaps = b.vol.snapshots();
    // A user's read-write subvolume with an ff- name: the reported data loss.
    sh(&format!(
        "btrfs -q subvolume create {}",
        snaps.join("ff-userdata").display()
    ));
    std::fs::write(snaps.join("ff-userdata/precious"), "user data").unwrap();
    // The exact name form, but read-write.
    let rw = snaps.join("ff-20200101T000000-vol");
    sh(&format!("btrfs -q subvolume create {}", rw.display()));
    std::fs::write(rw.join("precious"), "user data").unwrap();
    // The exact name form, read-only, but a snapshot of another subvolume.
    let other = b.vol.mnt.join("other");
    sh(&format!("btrfs -q subvolume create {}", other.display()));
    snapshot(&other, &snaps, "ff-20200101T000001-vol");
    // A read-only snapshot of the volume, but nobody recorded as its maker.
    snapshot(&b.vol.volume(), &snaps, "ff-20200101T000002-vol");
    // Ours, and its maker is gone (a PID of another boot): abandoned.
    snapshot(&b.vol.volume(), &snaps, "ff-20200101T000003-vol");
    std::fs::write(
        snaps.join("ff-20200101T000003-vol.owner"),
        owner_json(1, 1, &"0".repeat(32)),
    )
    .unwrap();
    // Ours, and its maker (this test) still runs.
    snapshot(&b.vol.volume(), &snaps, "ff-20200101T000004-vol-101");
    let me = std::process::id();
    std::fs::write(
        snaps.join("ff-20200101T000004-vol-101.owner"),
        owner_json(me, start_time(me), &boot_id()),
    )
    .unwrap();
    let kept = [
        "ff-20200101T000000-vol",
        "ff-20200101T000001-vol",
        "ff-20200101T000002-vol",
        "ff-20200101T000004-vol-101",
        "ff-userdata",
    ];

    let (code, out, err) = env.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("removed orphaned snapshot ff-20200101T000003-vol"),
        "{err}"
    );
    for (name, why) in [
        ("ff-20200101T000000-vol", "read-write subvolume"),
        ("ff-20200101T000001-vol", "snapshot of another subvolume"),
        ("ff-20200101T000002-vol", "no owner record"),
        ("ff-20200101T000004-vol-101", "still running"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(name) && l.contains(why)),
            "{name}: expected `{why}` in: {err}"
        );
    }
    assert!(
        !err.contains("ff-userdata"),
        "not even named like ours: {err}"
    );
    assert_eq!(b.vol.snapshot_names(), kept);
    // Every backup sweeps too: the same things survive it.
    env.backup_json(&["--all"]);
    assert_eq!(b.vol.snapshot_names(), kept);
    assert_eq!(
        std::fs::read_to_string(snaps.join("ff-userdata/precious")).unwrap(),
        "user data"
    );
    assert_eq!(
        std::fs::read_to_string(rw.join("precious")).unwrap(),
        "user data"
    );
    drop(b.cgs);
}

fn spawn(env: &Env, args: &[&str], fault: &str) -> Child {
    env.spawn(args, Some(fault))
}

/// Waits until a snapshot of this run exists (the run is past `after-thaw`).
fn wait_for_snapshot(vol: &LoopBtrfs, child: &mut Child) -> String {
    let t = Instant::now();
    loop {
        if let Some(n) = vol.snapshot_names().into_iter().next() {
            return n;
        }
        assert!(child.try_wait().unwrap().is_none(), "backup ended early");
        assert!(t.elapsed() < Duration::from_secs(20), "no snapshot");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_configs_on_one_volume_leave_each_others_snapshots_alone() {
    if !privileged() {
        return;
    }
    let (b, cts) = bed(&["a", "b"]);
    let mut cts = cts.into_iter();
    let (ct_a, ct_b) = (cts.next().unwrap(), cts.next().unwrap());
    // Same volume, same volume name and snapshot folder, other state dirs.
    let env_a = Env::new(&b.vol.volume(), &[ct_a], "");
    let env_b = Env::new(&b.vol.volume(), &[ct_b], "");
    // A stalls in the middle of its archive for 10 s, its snapshot live.
    let mut a = spawn(
        &env_a,
        &["backup", "--json", "--all"],
        "mid-archive:hang=10s",
    );
    let snap_a = wait_for_snapshot(&b.vol, &mut a);
    // B backs up and recovers meanwhile: both sweep the shared folder.
    env_b.backup_json(&["--all"]);
    let (code, out, err) = env_b.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&snap_a) && err.contains("still running"),
        "B names A's snapshot as in use: {err}"
    );
    assert!(
        b.vol.snapshot_names().contains(&snap_a),
        "B removed A's live snapshot"
    );
    // A finishes, complete.
    let out = a.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ct = &m["containers"][0];
    assert_eq!(ct["result"], "ok", "{ct}");
    assert_eq!(
        ct["tree"]["entries"], 21,
        "every file of a is in its archive: {ct}"
    );
    assert!(
        b.vol.snapshot_folder().is_empty(),
        "{:?}",
        b.vol.snapshot_folder()
    );
    drop(b.cgs);
}

#[test]
fn a_killed_runs_snapshot_is_swept_from_another_state_dir_once_its_maker_is_gone() {
    if !privileged() {
        return;
    }
    let (b, cts) = bed(&["a", "b"]);
    let mut cts = cts.into_iter();
    let (ct_a, ct_b) = (cts.next().unwrap(), cts.next().unwrap());
    let env_a = Env::new(&b.vol.volume(), &[ct_a], "");
    let env_b = Env::new(&b.vol.volume(), &[ct_b], "");
    // A and its guardian die after the thaw: A's journal still lists the
    // snapshot, but B's does not know of it.
    let mut a = spawn(&env_a, &["backup", "--all"], "after-thaw:hang=60s");
    let snap_a = wait_for_snapshot(&b.vol, &mut a);
    for g in guardians(a.id()) {
        kill9(g);
    }
    kill9(a.id());
    a.wait().unwrap();
    let (code, out, err) = env_b.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("removed orphaned snapshot {snap_a}")) && err.contains("is gone"),
        "{err}"
    );
    assert!(
        b.vol.snapshot_folder().is_empty(),
        "{:?}",
        b.vol.snapshot_folder()
    );
    // A's own recover finds its journaled snapshot gone already: fine.
    let (code, out, err) = env_a.run(&["recover"]);
    assert_eq!(code, 0, "{out}{err}");
    drop(b.cgs);
}

#[test]
fn verify_and_list_report_a_run_being_written_as_in_progress_not_damage() {
    if !privileged() {
        return;
    }
    let (b, cts) = bed(&["a"]);
    let env = Env::new(&b.vol.volume(), &cts, "");
    env.backup_json(&["--all"]);
    let mut a = spawn(&env, &["backup", "--all"], "mid-archive:hang=30s");
    wait_for_snapshot(&b.vol, &mut a);
    let (code, out, err) = env.run(&["verify"]);
    assert_eq!(code, 0, "a run in progress is not damage: {out}{err}");
    assert!(
        out.contains("in progress: being written by run") && out.contains("1 run(s) in progress"),
        "{out}"
    );
    let (code, out, _) = env.run(&["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("RUNNING") && !out.contains("INCOMPLETE"),
        "{out}"
    );
    // Once its writer is gone, the same folder is incomplete: damage.
    kill9(a.id());
    a.wait().unwrap();
    let t = Instant::now();
    // The guardian removes it; until then verify calls it incomplete.
    loop {
        let (code, out, _) = env.run(&["verify"]);
        if code == 0 && !out.contains("in progress") {
            break;
        }
        assert!(code == 1 && out.contains("incomplete"), "{out}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the guardian never cleaned up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(b.cgs);
}
