//! cgroup v1 `blkio` archive groups: threads join one by one.

use std::io;
use std::path::Path;

use super::{make_dir, write, IoLimits};

/// Creates the group at `path` with `limits`; returns warnings for limits
/// this kernel cannot apply (a weight without BFQ).
pub fn create(path: &Path, limits: &IoLimits) -> io::Result<Vec<String>> {
    make_dir(path)?;
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
pub fn join_thread(path: &Path) -> io::Result<()> {
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    write(&path.join("tasks"), &format!("{tid}\n"))
}
