//! LVM, for real, inside the QEMU test guest (the host kernel has no
//! device-mapper). `lvm_scenarios_in_the_guest` runs on the host: it boots
//! the guest of `../shared/testbed/` with this test binary and the
//! `freezeframe` binary as payload, and runs the `guest_*` tests there
//! (they are `#[ignore]`d on the host and run with `--ignored` in the guest).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Instant;

use common::{guardians, kill9, require, sh, CgVersion, TestCgroup};

fn testbed() -> PathBuf {
    common::manifest_dir().join("../../../shared/testbed")
}

fn in_guest() -> bool {
    std::env::var("LVMVM_GUEST").is_ok()
}

#[test]
fn lvm_scenarios_in_the_guest() {
    let lvmvm =
        PathBuf::from(std::env::var("LVMVM_DIR").unwrap_or_else(|_| "/var/tmp/lvmvm".into()));
    if in_guest()
        || !require("root", sh("id -u").trim() == "0")
        || !require(
            "the LVM test guest (bash ../shared/testbed/lvmvm-setup.sh)",
            lvmvm.join("base.cpio").exists() && testbed().join("lvmvm-run.sh").exists(),
        )
    {
        return;
    }
    let payload = tempfile::Builder::new()
        .prefix("ff-lvm-payload-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let me = std::env::current_exe().unwrap();
    let ff = assert_cmd::cargo::cargo_bin("freezeframe");
    // Debug info is most of a test binary: the guest unpacks it into RAM.
    sh(&format!(
        "strip -o {}/lvm_tests {}",
        payload.path().display(),
        me.display()
    ));
    // Not executable on the way in: the testbed copies the shared libraries
    // of each executable with ldd, whose output it cannot parse for two of
    // them; the guest makes it executable again.
    sh(&format!(
        "strip -o {0}/freezeframe {1} && chmod -x {0}/freezeframe",
        payload.path().display(),
        ff.display()
    ));
    // Its shared libraries (the system OpenSSL, for S3) go along in lib/.
    sh(&format!(
        "mkdir -p {0}/lib && ldd {1} | awk '/(libssl|libcrypto)[^ ]* => \\//{{print $3}}' | xargs -r cp -L -t {0}/lib && chmod 0644 {0}/lib/*",
        payload.path().display(),
        ff.display()
    ));
    // thin_delta (for thin bases): the multi-call binary of
    // thin-provisioning-tools, made executable and linked in the guest.
    if !require(
        "thin_delta (apt-get install -y thin-provisioning-tools)",
        Path::new("/usr/sbin/pdata_tools").exists(),
    ) {
        return;
    }
    sh(&format!(
        "cp -L /usr/sbin/pdata_tools {0}/pdata_tools && chmod -x {0}/pdata_tools",
        payload.path().display()
    ));
    // LVMVM_FILTER runs fewer guest tests (a name or part of one).
    let filter = std::env::var("LVMVM_FILTER").unwrap_or_else(|_| "guest_".into());
    assert!(
        filter
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "LVMVM_FILTER: a test name or part of one"
    );
    // The cgroup v2 test changes the guest root's subtree_control, which
    // walks every cgroup (dying ones of earlier tests too): under TCG that
    // once stalled the guest into soft lockups. It runs first, on the
    // fresh tree of a just-booted guest.
    let first = if FRESH_CGROUPS.contains(&filter) {
        format!("./lvm_tests --ignored --test-threads=1 --nocapture --exact {FRESH_CGROUPS} && ")
    } else {
        String::new()
    };
    let t = Instant::now();
    let status = Command::new("bash")
        .arg(testbed().join("lvmvm-run.sh"))
        .args(["-d", "4G", "-m", "2G", "-c", "2", "-t", "1200"])
        .arg(payload.path())
        .args([
            "--",
            "bash",
            "-c",
            // The kernel's warnings (a soft lockup's backtraces) go to the
            // console log, whose tail a failed run prints.
            &format!("echo 7 > /proc/sys/kernel/printk; echo 1 > /proc/sys/kernel/softlockup_all_cpu_backtrace; chmod +x freezeframe pdata_tools && ln -sf /payload/pdata_tools /usr/sbin/thin_delta && printf '#!/bin/sh\\nLD_LIBRARY_PATH=/payload/lib exec /payload/freezeframe \"$@\"\\n' > ff && chmod +x ff && export FF_BIN=/payload/ff RUST_BACKTRACE=1 && {first}./lvm_tests --ignored --test-threads=1 --nocapture {filter} --skip {FRESH_CGROUPS}"),
        ])
        .status()
        .unwrap();
    eprintln!(
        "LVM guest suite: {:.0} s (boot included)",
        t.elapsed().as_secs_f64()
    );
    assert!(status.success(), "LVM tests in the guest failed: {status}");
}

// ---- inside the guest ---------------------------------------------------

/// The guest test that needs a fresh cgroup tree (see above).
const FRESH_CGROUPS: &str = "guest_throttle_uses_a_cgroup_v2_io_group_outside_freeze_windows";

#[path = "lvm/thin_base.rs"]
mod thin_base;

const VG: &str = "ffvg";

fn guest_vg() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let disk = std::env::var("LVMVM_DISK").unwrap();
        // The guest runs the tests in two processes (see above): the
        // second finds the group the first made.
        sh(&format!(
            "vgs {VG} >/dev/null 2>&1 || {{ pvcreate -q {disk} && vgcreate -q {VG} {disk}; }}"
        ));
    });
}

/// A logical volume with a file system, mounted; removed (with any
/// snapshot of it) on drop.
struct TestLv {
    name: String,
    mnt: PathBuf,
}

impl TestLv {
    fn new(name: &str, size: &str, fs: &str, thin_pool: Option<&str>) -> Self {
        guest_vg();
        match thin_pool {
            None => sh(&format!("lvcreate -q -y -W y -L {size} -n {name} {VG}")),
            Some(pool) => sh(&format!(
                "lvcreate -q -y -W y -V {size} -T {VG}/{pool} -n {name}"
            )),
        };
        let mkfs = if fs == "xfs" {
            "mkfs.xfs -q -f"
        } else {
            "mkfs.ext4 -q"
        };
        sh(&format!("{mkfs} /dev/{VG}/{name}"));
        let mnt = PathBuf::from(format!("/mnt/{name}"));
        std::fs::create_dir_all(&mnt).unwrap();
        sh(&format!("mount -t {fs} /dev/{VG}/{name} {}", mnt.display()));
        Self {
            name: name.into(),
            mnt,
        }
    }
}

impl Drop for TestLv {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("lvremove -q -f {VG}/{}", self.name))
            .status();
    }
}

fn ff() -> Command {
    Command::new(std::env::var("FF_BIN").unwrap_or_else(|_| "./freezeframe".into()))
}

fn run(config: &Path, args: &[&str], fault: Option<&str>) -> (i32, String, String) {
    let mut c = ff();
    c.args(args).env("FREEZEFRAME_CONFIG", config);
    if let Some(f) = fault {
        c.env("FREEZEFRAME_FAULT", f);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-9),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tagged_lvs() -> Vec<String> {
    sh(&format!(
        "lvs --noheadings -o lv_name -S lv_tags=freezeframe {VG}"
    ))
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

struct Ct<'a> {
    id: &'a str,
    cg: &'a TestCgroup,
    private: PathBuf,
}

fn config(dir: &Path, volumes: &[(&str, &TestLv, &str, &str)], cts: &[Ct]) -> PathBuf {
    let mut t = format!(
        "state_dir = \"{0}/state\"\n[target]\npath = \"{0}/backups\"\n[backup]\nfreeze_timeout = \"20s\"\n",
        dir.display()
    );
    for (name, lv, provider, extra) in volumes {
        t.push_str(&format!(
            "\n[[volume]]\nname = \"{name}\"\npath = \"{}\"\nprovider = \"{provider}\"\nsnapshot_dir = \"/run/ff-snap\"\n{extra}\n",
            lv.mnt.display()
        ));
    }
    for c in cts {
        t.push_str(&format!(
            "\n[[container]]\nid = \"{}\"\ncgroup = \"{}\"\nprivate = \"{}\"\n",
            c.id,
            c.cg.rel,
            c.private.display()
        ));
    }
    let p = dir.join("freezeframe.toml");
    std::fs::write(&p, t).unwrap();
    p
}

/// A container: a cgroup whose process appends a line to `log` every ~2 ms,
/// and some static data.
fn container(lv: &TestLv, id: &str, data_mib: u32) -> (TestCgroup, PathBuf) {
    let private = lv.mnt.join(id);
    std::fs::create_dir_all(private.join("data")).unwrap();
    sh(&format!(
        "dd if=/dev/urandom of={}/data/blob bs=1M count={data_mib} status=none",
        private.display()
    ));
    for i in 0..50 {
        std::fs::write(
            private.join(format!("data/small-{i}")),
            format!("file {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let mut cg = TestCgroup::new(CgVersion::V2);
    let log = private.join("log");
    cg.spawn(&[
        "bash",
        "-c",
        &format!(
            "i=0; while :; do i=$((i+1)); echo \"$i $EPOCHREALTIME\" >> {}; sleep 0.002; done",
            log.display()
        ),
    ]);
    (cg, private)
}

fn restore_and_compare(cfg: &Path, dir: &Path, id: &str, private: &Path) {
    let to = dir.join(format!("restored-{id}"));
    let (code, out, err) = run(cfg, &["restore", id, "--to", to.to_str().unwrap()], None);
    assert_eq!(code, 0, "restore {id}: {out}{err}");
    // Static data is identical to the origin.
    sh(&format!(
        "diff -r {}/data {}/data",
        private.display(),
        to.display()
    ));
    // The appended log is a prefix of the live one: the state at freeze time.
    let restored = std::fs::read(to.join("log")).unwrap();
    let live = std::fs::read(private.join("log")).unwrap();
    assert!(
        !restored.is_empty() && live.starts_with(&restored),
        "{id}: restored log is not a prefix of the live log"
    );
    assert!(
        restored.ends_with(b"\n"),
        "{id}: a torn last line: the freeze did not hold"
    );
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_classic_cow_ext4_and_xfs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let ext = TestLv::new("ct_ext", "300m", "ext4", None);
    let xfs = TestLv::new("ct_xfs", "400m", "xfs", None);
    let (cg1, p1) = container(&ext, "101", 20);
    let (cg2, p2) = container(&xfs, "102", 20);
    let cfg = config(
        dir.path(),
        &[
            ("ext", &ext, "lvm", "snapshot_size = \"50%\""),
            ("xfs", &xfs, "lvm", "snapshot_size = \"100M\""),
        ],
        &[
            Ct {
                id: "101",
                cg: &cg1,
                private: p1.clone(),
            },
            Ct {
                id: "102",
                cg: &cg2,
                private: p2.clone(),
            },
        ],
    );
    let (code, out, err) = run(&cfg, &["backup", "--all", "--json"], None);
    assert_eq!(code, 0, "{out}{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    for c in m["containers"].as_array().unwrap() {
        assert_eq!(c["result"], "ok", "{c}");
        eprintln!("GUEST classic freeze_ms {} = {}", c["id"], c["freeze_ms"]);
    }
    for s in m["snapshots"].as_array().unwrap() {
        assert!(
            s["peak_used_percent"].as_f64().is_some(),
            "peak usage recorded: {s}"
        );
    }
    assert!(
        tagged_lvs().is_empty(),
        "snapshots left: {:?}",
        tagged_lvs()
    );
    restore_and_compare(&cfg, dir.path(), "101", &p1);
    restore_and_compare(&cfg, dir.path(), "102", &p2);
    let (code, out, _) = run(&cfg, &["verify"], None);
    assert_eq!(code, 0, "{out}");
    drop((cg1, cg2));
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_overflowing_snapshot_fails_loudly_and_others_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let small = TestLv::new("ct_small", "300m", "ext4", None);
    let fine = TestLv::new("ct_fine", "300m", "ext4", None);
    let (cg1, p1) = container(&small, "201", 60);
    let (cg2, p2) = container(&fine, "202", 10);
    // A writer that rewrites 40 MiB over and over: it outruns an 8 MiB COW area.
    let mut writer = TestCgroup::new(CgVersion::V2);
    writer.spawn(&["bash", "-c", &format!("while :; do dd if=/dev/urandom of={}/churn bs=1M count=40 conv=fsync status=none; done", p1.display())]);
    let cfg = config(
        dir.path(),
        &[
            ("small", &small, "lvm", "snapshot_size = \"8M\""),
            ("fine", &fine, "lvm", "snapshot_size = \"100%\""),
        ],
        &[
            Ct {
                id: "201",
                cg: &cg1,
                private: p1,
            },
            Ct {
                id: "202",
                cg: &cg2,
                private: p2,
            },
        ],
    );
    let (code, out, err) = run(&cfg, &["backup", "--all", "--json"], None);
    drop(writer);
    assert_eq!(code, 3, "partial: {out}{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c201 = &m["containers"][0];
    assert_eq!(c201["result"], "failed", "{c201}");
    let e = c201["error"].as_str().unwrap();
    assert!(
        e.contains("overflowed") && e.contains("8 MiB") && e.contains("snapshot_size"),
        "{e}"
    );
    assert_eq!(m["containers"][1]["result"], "ok");
    let snaps = m["snapshots"].as_array().unwrap();
    let bad = snaps.iter().find(|s| s["volume"] == "small").unwrap();
    assert!(
        bad["invalid"].is_string() && bad["peak_used_percent"].as_f64().unwrap() >= 99.0,
        "{bad}"
    );
    eprintln!("GUEST overflow: {}", bad);
    let (code, vout, _) = run(&cfg, &["verify"], None);
    assert_eq!(
        code, 1,
        "verify must not report the overflowed backup as good: {vout}"
    );
    assert!(
        vout.contains("201") && vout.contains("overflowed"),
        "{vout}"
    );
    assert!(
        tagged_lvs().is_empty(),
        "snapshots left: {:?}",
        tagged_lvs()
    );
    drop((cg1, cg2));
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_not_enough_vg_space_is_refused_before_any_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let free_mib: u64 = sh(&format!(
        "vgs --noheadings --units m --nosuffix -o vg_free {VG}"
    ))
    .trim()
    .parse::<f64>()
    .unwrap() as u64;
    let big = TestLv::new("ct_big", &format!("{}m", free_mib * 6 / 10), "ext4", None);
    let (cg, p) = container(&big, "301", 5);
    let cfg = config(
        dir.path(),
        &[("big", &big, "lvm", "snapshot_size = \"100%\"")],
        &[Ct {
            id: "301",
            cg: &cg,
            private: p,
        }],
    );
    let (code, out, err) = run(&cfg, &["backup", "--all"], None);
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.contains("MiB free") && err.contains("snapshot_size"),
        "{err}"
    );
    assert!(!cg.is_frozen());
    assert!(tagged_lvs().is_empty());
    assert!(
        !dir.path().join("backups").exists()
            || std::fs::read_dir(dir.path().join("backups"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_thin_round_trip_and_full_pool_refused() {
    let dir = tempfile::tempdir().unwrap();
    guest_vg();
    sh(&format!("lvcreate -q -y -W y -L 400m -T {VG}/ffpool"));
    let thin = TestLv::new("ct_thin", "300m", "ext4", Some("ffpool"));
    let (cg, p) = container(&thin, "401", 20);
    let cfg = config(
        dir.path(),
        &[("thin", &thin, "lvm-thin", "")],
        &[Ct {
            id: "401",
            cg: &cg,
            private: p.clone(),
        }],
    );
    let (code, out, err) = run(&cfg, &["backup", "--all", "--json"], None);
    assert_eq!(code, 0, "{out}{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    eprintln!(
        "GUEST thin freeze_ms 401 = {}",
        m["containers"][0]["freeze_ms"]
    );
    restore_and_compare(&cfg, dir.path(), "401", &p);
    assert!(tagged_lvs().is_empty());
    // Pool above the threshold: refused before freezing.
    let cfg = config(
        dir.path(),
        &[("thin", &thin, "lvm-thin", "thin_max_data_percent = 5")],
        &[Ct {
            id: "401",
            cg: &cg,
            private: p,
        }],
    );
    let (code, _, err) = run(&cfg, &["backup", "--all"], None);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("thin pool") && err.contains("thin_max_data_percent"),
        "{err}"
    );
    assert!(!cg.is_frozen());
    drop(cg);
    drop(thin);
    sh(&format!("lvremove -q -f {VG}/ffpool"));
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_orphans_are_removed_and_user_snapshots_survive() {
    let dir = tempfile::tempdir().unwrap();
    let lv = TestLv::new("ct_orph", "300m", "ext4", None);
    let (cg, p) = container(&lv, "501", 5);
    sh(&format!(
        "lvcreate -q -y -s -L 20m -n usersnap {VG}/ct_orph"
    ));
    let cfg = config(
        dir.path(),
        &[("orph", &lv, "lvm", "snapshot_size = \"20%\"")],
        &[Ct {
            id: "501",
            cg: &cg,
            private: p,
        }],
    );
    // Killed right after the snapshot: the guardian thaws and cleans up.
    let (code, _, err) = run(&cfg, &["backup", "--all"], Some("after-snapshot"));
    assert_eq!(code, -9, "{err}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!cg.is_frozen());
    assert!(
        tagged_lvs().is_empty(),
        "the guardian removed it: {:?}",
        tagged_lvs()
    );
    // Killed after the snapshot with its guardian: the tagged orphan is left
    // (and the container frozen); recover undoes exactly that.
    let mut c = ff();
    c.args(["backup", "--all"])
        .env("FREEZEFRAME_CONFIG", &cfg)
        .env("FREEZEFRAME_FAULT", "after-snapshot:hang=120s");
    let mut child = c.spawn().unwrap();
    let t = Instant::now();
    while tagged_lvs().is_empty() {
        assert!(t.elapsed().as_secs() < 60, "no snapshot");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for g in guardians(child.id()) {
        kill9(g);
    }
    kill9(child.id());
    child.wait().unwrap();
    assert!(cg.is_frozen() && tagged_lvs().len() == 1);
    let (code, out, err) = run(&cfg, &["recover"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!cg.is_frozen());
    assert!(tagged_lvs().is_empty(), "{:?}", tagged_lvs());
    // An orphan no journal knows whose maker is gone (a PID of another
    // boot): recover removes it. One named and tagged like ours but with
    // no maker recorded cannot be shown abandoned: it is left alone.
    let dead = format!("ffowner_1_1_{}", "0".repeat(32));
    sh(&format!(
        "lvcreate -q -y -s -L 20m -n ff-20260101T000000-orph --addtag freezeframe --addtag {dead} {VG}/ct_orph"
    ));
    sh(&format!(
        "lvcreate -q -y -s -L 20m -n ff-20260101T000001-orph --addtag freezeframe {VG}/ct_orph"
    ));
    let (code, out, err) = run(&cfg, &["recover"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("removed orphaned snapshot ff-20260101T000000-orph"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("left alone: ff-20260101T000001-orph")
                && l.contains("no owner record")),
        "{err}"
    );
    assert_eq!(tagged_lvs(), ["ff-20260101T000001-orph"]);
    sh(&format!("lvremove -q -f {VG}/ff-20260101T000001-orph"));
    let all = sh(&format!("lvs --noheadings -o lv_name {VG}"));
    assert!(
        all.contains("usersnap"),
        "the user's own snapshot must survive: {all}"
    );
    sh(&format!("lvremove -q -f {VG}/usersnap"));
}

#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_lvm_classic_and_thin_keep_the_snapshot_contract() {
    use freezeframe::contract::{snapshot_contract, SnapshotSubject};
    let dir = tempfile::tempdir().unwrap();
    guest_vg();
    sh(&format!("lvcreate -q -y -W y -L 200m -T {VG}/ffcpool"));
    let classic = TestLv::new("ct_contract", "100m", "ext4", None);
    let thin = TestLv::new("ct_contract_thin", "100m", "ext4", Some("ffcpool"));
    let cfg = config(
        dir.path(),
        &[
            ("classic", &classic, "lvm", ""),
            ("thin", &thin, "lvm-thin", ""),
        ],
        &[],
    );
    let config = freezeframe::load(&cfg).unwrap();
    let runner = std::sync::Arc::new(freezeframe::SystemRunner);
    for (i, thin) in [(0, false), (1, true)] {
        let provider = freezeframe::LvmProvider::new(runner.clone(), thin);
        snapshot_contract(&SnapshotSubject {
            provider: &provider,
            volume: config.volumes[i].clone(),
            state_dir: &dir.path().join("state"),
        });
    }
    assert!(tagged_lvs().is_empty(), "{:?}", tagged_lvs());
    drop(thin);
    drop(classic);
    sh(&format!("lvremove -q -f {VG}/ffcpool"));
}

/// `major:minor` of the guest's LVM disk (every LV here is on it).
fn guest_disk() -> String {
    let disk = std::env::var("LVMVM_DISK").unwrap();
    let name = Path::new(&disk).file_name().unwrap().to_str().unwrap();
    std::fs::read_to_string(format!("/sys/class/block/{name}/dev"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Waits (up to a minute) for `f`.
fn guest_wait(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed().as_secs() < 60, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The PIDs in a v2 cgroup folder.
fn procs_in(group: &Path) -> Vec<u32> {
    std::fs::read_to_string(group.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The nice value of each thread of `pid`.
fn thread_nices(pid: u32) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid: u32 = t.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        out.push((
            tid,
            after.split_whitespace().nth(16).unwrap().parse().unwrap(),
        ));
    }
    out
}

/// `backup --all --json` with the fault `fault`, its stdout piped: the
/// child, its PID and the archive group it would create below `root`.
fn spawn_backup(cfg: &Path, fault: &str, root: &Path) -> (std::process::Child, u32, PathBuf) {
    let mut c = ff();
    c.args(["backup", "--all", "--json"])
        .env("FREEZEFRAME_CONFIG", cfg)
        .env("FREEZEFRAME_FAULT", fault)
        .stdout(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id();
    (child, pid, root.join(format!("freezeframe-archive-{pid}")))
}

/// Throttling on a pure cgroup v2 host (issue 15): the whole process is
/// in the archive group while it archives, with the configured `io.max`
/// and `io.weight`, leaves it for every freeze window (so the window and
/// the snapshot tools it runs are never limited), and the group is gone
/// afterwards, also after SIGKILL + `recover`.
#[test]
#[ignore = "runs inside the LVM guest"]
fn guest_throttle_uses_a_cgroup_v2_io_group_outside_freeze_windows() {
    let root = common::cgroup_v2_root().expect("the guest has cgroup v2");
    assert!(
        std::fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap()
            .split_whitespace()
            .any(|c| c == "io"),
        "the guest's cgroup v2 offers io"
    );
    // The target on an LV too, so io_write_max has a disk to limit.
    let tgt = TestLv::new("ff_thr_tgt", "200m", "ext4", None);
    let dir = tempfile::tempdir_in(&tgt.mnt).unwrap();
    let lv = TestLv::new("ct_thr", "300m", "ext4", None);
    let (cg1, p1) = container(&lv, "401", 8);
    let (cg2, p2) = container(&lv, "402", 8);
    let cfg = config(
        dir.path(),
        &[("thr", &lv, "lvm", "snapshot_size = \"50%\"")],
        &[
            Ct {
                id: "401",
                cg: &cg1,
                private: p1,
            },
            Ct {
                id: "402",
                cg: &cg2,
                private: p2,
            },
        ],
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[backup]\n", "[backup]\nstrategy = \"each\"\n")
        + "\n[throttle]\nio_read_max = \"64M\"\nio_write_max = \"32M\"\nio_weight = 50\nnice = 5\n";
    std::fs::write(&cfg, text).unwrap();
    let disk = guest_disk();

    // The guest boots without io for the root's children: freezeframe
    // refuses (before any freeze) rather than change the host's root
    // cgroup. The test enables it, for this throwaway guest.
    let control = root.join("cgroup.subtree_control");
    let enabled = || {
        std::fs::read_to_string(&control)
            .unwrap()
            .split_whitespace()
            .any(|c| c == "io")
    };
    if !enabled() {
        let (code, out, err) = run(&cfg, &["backup", "--all"], None);
        assert_ne!(code, 0, "{out}{err}");
        assert!(err.contains("echo +io >"), "{err}");
        assert!(!enabled(), "freezeframe enabled io itself");
        assert!(!cg1.is_frozen() && !cg2.is_frozen());
        std::fs::write(&control, "+io\n").unwrap();
    }

    let (code, plan, err) = run(&cfg, &["backup", "--all", "--dry-run"], None);
    assert_eq!(code, 0, "{plan}{err}");
    let line = plan
        .lines()
        .find(|l| l.starts_with("throttle"))
        .unwrap_or_else(|| panic!("{plan}"));
    for part in [
        "cgroup v2: the whole process".to_owned(),
        format!("read 67108864 B/s from {disk}"),
        format!("write 33554432 B/s to {disk}"),
        "io weight 50".to_owned(),
        "nice 5".to_owned(),
    ] {
        assert!(line.contains(&part), "{part} not in: {line}");
    }

    // Freeze windows: no group during the first; out of it (back in its
    // own cgroup) during the second, while the first is archived.
    let (child, pid, group) = spawn_backup(&cfg, "after-freeze:hang=3s", &root);
    guest_wait("401's freeze", || cg1.is_frozen());
    assert!(
        !group.exists(),
        "{} during the first window",
        group.display()
    );
    guest_wait("402's freeze", || cg2.is_frozen());
    assert!(
        !procs_in(&group).contains(&pid),
        "in the archive group during a freeze window"
    );
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let ours = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(own, ours, "back in its own cgroup (the one it started in)");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!group.exists(), "{} left after the run", group.display());
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in m["containers"].as_array().unwrap() {
        assert_eq!(c["result"], "ok", "{c}");
    }

    // The archive phase: the process in the group with its limits, its
    // worker threads at nice 5, the coordinator and the guardian not.
    let (child, pid, group) = spawn_backup(&cfg, "mid-archive:hang=3s", &root);
    guest_wait("the archive group", || procs_in(&group).contains(&pid));
    let io_max = std::fs::read_to_string(group.join("io.max")).unwrap();
    assert_eq!(
        io_max.trim(),
        format!("{disk} rbps=67108864 wbps=33554432 riops=max wiops=max")
    );
    let weighted = ["io.weight", "io.bfq.weight"]
        .iter()
        .map(|f| group.join(f))
        .find(|p| p.exists());
    if let Some(w) = &weighted {
        let w = std::fs::read_to_string(w).unwrap();
        assert!(w.contains("default 50"), "{w}");
    }
    for g in guardians(pid) {
        assert!(!procs_in(&group).contains(&g), "the guardian is throttled");
    }
    let nices = thread_nices(pid);
    assert!(nices.iter().any(|(_, n)| *n == 5), "{nices:?}");
    assert!(nices.contains(&(pid, 0)), "the coordinator: {nices:?}");
    let out = child.wait_with_output().unwrap();
    // A limit this kernel cannot apply is a warning: exit 3.
    assert_eq!(
        out.status.code(),
        Some(if weighted.is_some() { 0 } else { 3 }),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!group.exists(), "{} left after the run", group.display());
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        m["warnings"]
            .to_string()
            .contains("throttle.io_weight = 50 not applied"),
        weighted.is_none(),
        "{}",
        m["warnings"]
    );

    // SIGKILL mid-archive: gone once the guardian or `recover` is done.
    let mut c = ff();
    c.args(["backup", "--all"])
        .env("FREEZEFRAME_CONFIG", &cfg)
        .env("FREEZEFRAME_FAULT", "mid-archive");
    let mut child = c.spawn().unwrap();
    let group = root.join(format!("freezeframe-archive-{}", child.id()));
    assert_eq!(child.wait().unwrap().code(), None);
    let (code, out, err) = run(&cfg, &["recover"], None);
    assert_eq!(code, 0, "{out}{err}");
    guest_wait("the killed run's group to go", || !group.exists());
    assert!(!cg1.is_frozen() && !cg2.is_frozen());
    assert!(tagged_lvs().is_empty(), "{:?}", tagged_lvs());
    drop((cg1, cg2));
    drop(dir);
}
