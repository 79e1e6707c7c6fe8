//! Throttling (issue 15): the archive workers' cgroup exists during the
//! archive phase with the configured limits, holds the archive workers
//! and never the thread that freezes, does not exist during the freeze
//! window, and is gone afterwards, also after SIGKILL + `recover`.
//! Whether the limits hold is measured in bench/throttle.sh, not here.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{privileged, require, sh, Ct, Env};
use serde_json::Value;

fn blkio_root() -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split_whitespace();
        let fs = post.next()?;
        let opts = post.nth(1)?;
        (fs == "cgroup" && opts.split(',').any(|o| o == "blkio"))
            .then(|| PathBuf::from(pre.split_whitespace().nth(4).unwrap()))
    })
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `major:minor` of the disk a path's file system is on.
fn disk(path: &Path) -> String {
    let src = sh(&format!("findmnt -n -o SOURCE -T {}", path.display()));
    sh(&format!("lsblk -dno MAJ:MIN {}", src.trim()))
        .trim()
        .to_owned()
}

/// The nice value of thread `tid` of `pid`.
fn nice(pid: u32, tid: &str) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(16).unwrap().parse().unwrap()
}

#[test]
fn the_archive_cgroup_exists_only_for_the_archive_workers() {
    let Some(root) = blkio_root() else {
        require("the cgroup v1 blkio hierarchy", false);
        return;
    };
    if !privileged() {
        return;
    }
    // Whether this kernel has a blkio weight (BFQ's or CFQ's): without
    // one, io_weight is a warning and a good run exits 3.
    let weighted = ["blkio.bfq.weight", "blkio.weight"]
        .iter()
        .any(|f| root.join(f).exists());
    let good = if weighted { 0 } else { 3 };
    let (vol, cg, private) = common::volume_with_container("101");
    std::fs::write(private.join("f"), vec![7u8; 4 << 20]).unwrap();
    let env = Env::new(
        &vol.volume(),
        &[Ct::new("101", &cg, &private)],
        "[throttle]\nio_read_max = \"64M\"\nio_write_max = \"32M\"\nio_weight = 50\nnice = 5\n",
    );
    let (code, plan, err) = env.run(&["backup", "--all", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let line = plan
        .lines()
        .find(|l| l.starts_with("throttle"))
        .expect(&plan);
    let vol_disk = disk(&vol.volume());
    let target_disk = disk(env.dir.path());
    assert!(
        line.contains(&format!("read 67108864 B/s from {vol_disk}")),
        "{line}"
    );
    assert!(
        line.contains(&format!("write 33554432 B/s to {target_disk}")),
        "{line}"
    );
    assert!(line.contains("nice 5"), "{line}");

    // The freeze window: frozen, and no archive cgroup.
    let child = env.spawn(&["backup", "--all", "--json"], Some("after-freeze:hang=2s"));
    let group = root.join(format!("freezeframe-archive-{}", child.id()));
    wait_for("the freeze", Duration::from_secs(20), || cg.is_frozen());
    assert!(
        !group.exists(),
        "{} exists during the freeze window",
        group.display()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(good),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!group.exists(), "{} left after the run", group.display());
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["containers"][0]["result"], "ok");

    // The archive phase: the cgroup with its limits, the archive worker
    // in it at nice 5, the main thread (which freezes) not.
    let child = env.spawn(&["backup", "--all", "--json"], Some("mid-archive:hang=3s"));
    let pid = child.id();
    let group = root.join(format!("freezeframe-archive-{pid}"));
    wait_for("the archive cgroup", Duration::from_secs(20), || {
        std::fs::read_to_string(group.join("tasks")).is_ok_and(|t| !t.trim().is_empty())
    });
    let read = std::fs::read_to_string(group.join("blkio.throttle.read_bps_device")).unwrap();
    assert_eq!(read.trim(), format!("{vol_disk} 67108864"));
    let write = std::fs::read_to_string(group.join("blkio.throttle.write_bps_device")).unwrap();
    assert_eq!(write.trim(), format!("{target_disk} 33554432"));
    // The weight lands where this kernel has it (BFQ's), or is a warning.
    match ["blkio.bfq.weight", "blkio.weight"]
        .iter()
        .map(|f| group.join(f))
        .find(|p| p.exists())
    {
        Some(w) => {
            let w = std::fs::read_to_string(w).unwrap();
            assert!(w.split_whitespace().any(|x| x == "50"), "{w}");
            assert!(weighted, "{w} in the group but not at the root");
        }
        None => assert!(!weighted, "the weight file at the root, not in the group"),
    }
    let tasks = std::fs::read_to_string(group.join("tasks")).unwrap();
    let ours: Vec<&str> = tasks
        .split_whitespace()
        .filter(|t| Path::new(&format!("/proc/{pid}/task/{t}")).exists())
        .collect();
    assert!(!ours.is_empty(), "{tasks}");
    assert!(
        !ours.contains(&pid.to_string().as_str()),
        "the main thread is throttled: {tasks}"
    );
    for t in &ours {
        assert_eq!(nice(pid, t), 5, "thread {t}");
    }
    assert_eq!(
        nice(pid, &pid.to_string()),
        0,
        "the main thread keeps its priority"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(good),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!group.exists());
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        m["warnings"]
            .to_string()
            .contains("throttle.io_weight = 50 not applied"),
        !weighted,
        "{}",
        m["warnings"]
    );

    // SIGKILL mid-archive: gone once the guardian or `recover` is done.
    let child = env.spawn(&["backup", "--all"], Some("mid-archive"));
    let group = root.join(format!("freezeframe-archive-{}", child.id()));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None);
    let (code, o, e) = env.run(&["recover"]);
    assert_eq!(code, 0, "{o}{e}");
    wait_for(
        "the killed run's cgroup to go",
        Duration::from_secs(10),
        || !group.exists(),
    );
    assert!(!cg.is_frozen());
    assert!(
        vol.snapshot_folder().is_empty(),
        "{:?}",
        vol.snapshot_folder()
    );
}
