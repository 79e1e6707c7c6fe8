//! The cgroup freezeframe's archive phase runs in when `[throttle]` asks
//! for I/O limits: created for the archive phase, removed after.
//!
//! Two kinds, one per cgroup version (the engine decides who joins when):
//! - cgroup v1 `blkio` ([`v1`]): threads join one by one, so only the
//!   archive worker threads are in it and the thread that freezes never is;
//! - cgroup v2 `io` ([`v2`]): v2 moves whole processes (its `io`
//!   controller is not threaded), so the process joins for the archive
//!   phase and leaves for every freeze window. v2 groups live directly
//!   below the v2 root, where the "no internal processes" rule does not
//!   stand in the way whatever cgroup the process was started in.

pub mod v1;
pub mod v2;

use std::io;
use std::path::{Path, PathBuf};

/// The name prefix of freezeframe's archive groups; the PID follows.
pub const GROUP_PREFIX: &str = "freezeframe-archive-";

/// The limits to write into the group.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoLimits {
    /// Proportional weight (1..10000; v1 BFQ takes 1..1000).
    pub weight: Option<u32>,
    /// Read bytes/s per device (`major:minor`).
    pub read_bps: Vec<((u32, u32), u64)>,
    /// Write bytes/s per device.
    pub write_bps: Vec<((u32, u32), u64)>,
}

/// The group for the process `pid` below the hierarchy root `root`.
pub fn group_path(root: &Path, pid: u32) -> PathBuf {
    root.join(format!("{GROUP_PREFIX}{pid}"))
}

/// Whether `path` is named as one of ours.
pub fn is_ours(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(GROUP_PREFIX))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes `what` to the cgroup file `path`, naming both in the error.
pub(crate) fn write(path: &Path, what: &str) -> io::Result<()> {
    std::fs::write(path, what).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing `{}` to {}: {e}", what.trim(), path.display()),
        )
    })
}

/// Creates the folder of a group, naming it in the error.
pub(crate) fn make_dir(path: &Path) -> io::Result<()> {
    std::fs::create_dir(path)
        .map_err(|e| io::Error::new(e.kind(), format!("creating cgroup {}: {e}", path.display())))
}

/// Removes the group (refusing a folder not named as ours), either kind:
/// what is still in it (v1 threads, v2 processes) is moved to its parent
/// first. Gone already: nothing to do.
pub fn remove(path: &Path) -> io::Result<()> {
    if !is_ours(path) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a freezeframe archive cgroup", path.display()),
        ));
    }
    // v1 lists threads in `tasks`; v2 has no such file, only `cgroup.procs`.
    let list = if path.join("tasks").exists() {
        "tasks"
    } else {
        "cgroup.procs"
    };
    let members = match std::fs::read_to_string(path.join(list)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(parent) = path.parent() {
        for id in members.split_whitespace() {
            // One that ended meanwhile is gone from the list anyway.
            let _ = std::fs::write(parent.join(list), id);
        }
    }
    std::fs::remove_dir(path)
        .map_err(|e| io::Error::new(e.kind(), format!("removing cgroup {}: {e}", path.display())))
}

/// The disks (`major:minor`) under the file system mounted from `source`
/// (a `/dev/...` path), as the throttle files need them: a partition is
/// mapped to its disk and a stacked device (device-mapper: LVM, its
/// snapshots, dm-crypt) to the disks below it through `<sys>/dev/block`,
/// so that reading a snapshot (another dm device, made later) is limited
/// too. Empty when `source` is not a block device.
pub fn disks_of(source: &Path, sys: &Path) -> Vec<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(m) = std::fs::metadata(source) else {
        return Vec::new();
    };
    if !m.file_type().is_block_device() {
        return Vec::new();
    }
    let mut out = Vec::new();
    lowest(
        sys,
        (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev())),
        &mut out,
        0,
    );
    out
}

fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Adds the lowest disks below `dev` to `out` (a chain deeper than 8 is
/// not followed).
fn lowest(sys: &Path, dev: (u32, u32), out: &mut Vec<(u32, u32)>, depth: usize) {
    let node = sys.join(format!("dev/block/{}:{}", dev.0, dev.1));
    let slaves: Vec<(u32, u32)> = std::fs::read_dir(node.join("slaves"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| parse_dev(&std::fs::read_to_string(e.path().join("dev")).ok()?))
        .collect();
    if !slaves.is_empty() && depth < 8 {
        for s in slaves {
            lowest(sys, s, out, depth + 1);
        }
        return;
    }
    let disk = if node.join("partition").exists() {
        std::fs::read_to_string(node.join("../dev"))
            .ok()
            .and_then(|t| parse_dev(&t))
    } else {
        Some(dev)
    };
    if let Some(d) = disk {
        if !out.contains(&d) {
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_removed() {
        assert!(is_ours(Path::new(
            "/sys/fs/cgroup/blkio/freezeframe-archive-42"
        )));
        for p in [
            "/x/freezeframe-archive-",
            "/x/freezeframe-archive-4x",
            "/x/system.slice",
            "/",
        ] {
            assert!(!is_ours(Path::new(p)), "{p}");
            assert!(remove(Path::new(p)).is_err());
        }
    }

    #[test]
    fn stacked_devices_resolve_to_the_disks_below() {
        // A sysfs in miniature: dm-3 (LVM) on vda1 of vda, and dm-4 on both
        // dm-3 and vdb.
        let sys = tempfile::tempdir().unwrap();
        let block = sys.path().join("devices/block");
        let mk = |rel: &str, dev: &str| {
            let d = block.join(rel);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
            d
        };
        let vda = mk("vda", "252:0");
        let vda1 = mk("vda/vda1", "252:1");
        std::fs::write(vda1.join("partition"), "1\n").unwrap();
        let vdb = mk("vdb", "252:16");
        let dm3 = mk("dm-3", "254:3");
        let dm4 = mk("dm-4", "254:4");
        std::fs::create_dir_all(dm3.join("slaves")).unwrap();
        std::os::unix::fs::symlink(&vda1, dm3.join("slaves/vda1")).unwrap();
        std::fs::create_dir_all(dm4.join("slaves")).unwrap();
        std::os::unix::fs::symlink(&dm3, dm4.join("slaves/dm-3")).unwrap();
        std::os::unix::fs::symlink(&vdb, dm4.join("slaves/vdb")).unwrap();
        let by_dev = sys.path().join("dev/block");
        std::fs::create_dir_all(&by_dev).unwrap();
        for (d, dev) in [
            (&vda, "252:0"),
            (&vda1, "252:1"),
            (&vdb, "252:16"),
            (&dm3, "254:3"),
            (&dm4, "254:4"),
        ] {
            std::os::unix::fs::symlink(d, by_dev.join(dev)).unwrap();
        }
        let mut out = Vec::new();
        lowest(sys.path(), (254, 3), &mut out, 0);
        assert_eq!(out, vec![(252, 0)]);
        out.clear();
        lowest(sys.path(), (254, 4), &mut out, 0);
        out.sort_unstable();
        assert_eq!(out, vec![(252, 0), (252, 16)]);
        out.clear();
        lowest(sys.path(), (252, 16), &mut out, 0);
        assert_eq!(out, vec![(252, 16)]);
    }
}
