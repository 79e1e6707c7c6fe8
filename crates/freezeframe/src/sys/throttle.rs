//! The cgroup freezeframe's archive workers run in when `[throttle]` asks
//! for I/O limits: created for the archive phase, holding only the
//! archive worker threads (and the threads they start), removed after.
//!
//! On cgroup v1 (`blkio`), threads move one by one, so the thread that
//! freezes and snapshots is never in it. (cgroup v2 moves whole processes
//! and its `io` controller is not threaded; this host kind has no v2 `io`
//! controller to test with, so v2 is refused with a clear error.)

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

/// The group for the process `pid` below the blkio hierarchy at `root`.
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

fn write(path: &Path, what: &str) -> io::Result<()> {
    std::fs::write(path, what).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing `{}` to {}: {e}", what.trim(), path.display()),
        )
    })
}

/// Creates the group at `path` with `limits`; returns warnings for limits
/// this kernel cannot apply (a weight without BFQ).
pub fn create(path: &Path, limits: &IoLimits) -> io::Result<Vec<String>> {
    std::fs::create_dir(path).map_err(|e| {
        io::Error::new(e.kind(), format!("creating cgroup {}: {e}", path.display()))
    })?;
    let mut warnings = Vec::new();
    let set = || -> io::Result<()> {
        for ((maj, min), bps) in &limits.read_bps {
            write(
                &path.join("blkio.throttle.read_bps_device"),
                &format!("{maj}:{min} {bps}\n"),
            )?;
        }
        for ((maj, min), bps) in &limits.write_bps {
            write(
                &path.join("blkio.throttle.write_bps_device"),
                &format!("{maj}:{min} {bps}\n"),
            )?;
        }
        Ok(())
    };
    if let Err(e) = set() {
        let _ = std::fs::remove_dir(path);
        return Err(e);
    }
    if let Some(w) = limits.weight {
        let file = ["blkio.bfq.weight", "blkio.weight"]
            .iter()
            .map(|f| path.join(f))
            .find(|p| p.exists());
        match file {
            Some(f) => write(&f, &format!("{}\n", w.clamp(1, 1000)))?,
            None => warnings.push(format!(
                "throttle.io_weight = {w} not applied: this kernel's blkio hierarchy has no weight file (it needs the BFQ I/O scheduler, or cgroup v2's io controller)"
            )),
        }
    }
    Ok(warnings)
}

/// Moves the calling thread into the group.
pub fn join(path: &Path) -> io::Result<()> {
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    write(&path.join("tasks"), &format!("{tid}\n"))
}

/// Removes the group (refusing a folder not named as ours); threads still
/// in it are moved to its parent first. Gone already: nothing to do.
pub fn remove(path: &Path) -> io::Result<()> {
    if !is_ours(path) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a freezeframe archive cgroup", path.display()),
        ));
    }
    let tasks = match std::fs::read_to_string(path.join("tasks")) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(parent) = path.parent() {
        for tid in tasks.split_whitespace() {
            // A thread that ended meanwhile is gone from the list anyway.
            let _ = std::fs::write(parent.join("tasks"), tid);
        }
    }
    std::fs::remove_dir(path)
        .map_err(|e| io::Error::new(e.kind(), format!("removing cgroup {}: {e}", path.display())))
}

/// The whole-disk device (`major:minor`) holding the file system mounted
/// from `source` (a `/dev/...` path), as the throttle files need it: a
/// partition is mapped to its disk through `<sys>/dev/block`.
pub fn disk_of(source: &Path, sys: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::metadata(source).ok()?;
    if !m.file_type().is_block_device() {
        return None;
    }
    let dev = (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
    let node = sys.join(format!("dev/block/{}:{}", dev.0, dev.1));
    if node.join("partition").exists() {
        let disk = std::fs::read_to_string(node.join("../dev")).ok()?;
        let (a, b) = disk.trim().split_once(':')?;
        return Some((a.parse().ok()?, b.parse().ok()?));
    }
    Some(dev)
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
}
