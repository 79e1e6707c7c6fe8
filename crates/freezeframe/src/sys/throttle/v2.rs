//! cgroup v2 `io` archive groups: whole processes move in and out.

use std::io;
use std::path::{Path, PathBuf};

use super::{make_dir, write, IoLimits};

/// Whether the v2 hierarchy at `root` offers the `io` controller (on a
/// hybrid host it is usually bound to v1's `blkio` instead).
pub fn offers_io(root: &Path) -> bool {
    lists_io(&root.join("cgroup.controllers"))
}

/// Whether the root's children may use `io` (it is in the root's
/// `cgroup.subtree_control`). freezeframe never enables it itself: that
/// changes every cgroup of the host, and migrates every task on it.
pub fn io_enabled(root: &Path) -> bool {
    lists_io(&root.join("cgroup.subtree_control"))
}

/// Whether the controller list in `file` names `io`.
fn lists_io(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
}

/// The v2 cgroup named in a `/proc/<pid>/cgroup` text (its `0::` line),
/// relative to the hierarchy's root.
pub fn parse_cgroup_file(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.contains("/../") && !p.starts_with("../") && *p != "..")
}

/// The cgroup folder (below `root`) of the process whose cgroup file
/// (`/proc/self/cgroup`) is `cgroup_file`.
pub fn home(cgroup_file: &Path, root: &Path) -> io::Result<PathBuf> {
    let text = std::fs::read_to_string(cgroup_file)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", cgroup_file.display())))?;
    let rel = parse_cgroup_file(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} names no cgroup v2 path (no `0::` line)",
                cgroup_file.display()
            ),
        )
    })?;
    let home = root.join(rel);
    if !home.join("cgroup.procs").exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "this process's cgroup {} is not visible at {} (another cgroup namespace?)",
                rel,
                home.display()
            ),
        ));
    }
    Ok(home)
}

/// The `io.max` lines for `limits`: one per device, its read and write
/// limits together.
pub fn io_max_lines(limits: &IoLimits) -> Vec<String> {
    let mut devices: Vec<(u32, u32)> = Vec::new();
    for (d, _) in limits.read_bps.iter().chain(&limits.write_bps) {
        if !devices.contains(d) {
            devices.push(*d);
        }
    }
    devices
        .into_iter()
        .map(|d| {
            let mut line = format!("{}:{}", d.0, d.1);
            if let Some((_, r)) = limits.read_bps.iter().find(|(x, _)| *x == d) {
                line.push_str(&format!(" rbps={r}"));
            }
            if let Some((_, w)) = limits.write_bps.iter().find(|(x, _)| *x == d) {
                line.push_str(&format!(" wbps={w}"));
            }
            line
        })
        .collect()
}

/// Creates the group at `path` (directly below the v2 root, whose
/// children have `io`: [`io_enabled`]) with `limits`; returns warnings
/// for what this kernel cannot apply.
pub fn create(path: &Path, limits: &IoLimits) -> io::Result<Vec<String>> {
    let mut warnings = Vec::new();
    make_dir(path)?;
    let set = || -> io::Result<()> {
        for line in io_max_lines(limits) {
            write(&path.join("io.max"), &format!("{line}\n"))?;
        }
        Ok(())
    };
    if let Err(e) = set() {
        let _ = std::fs::remove_dir(path);
        return Err(e);
    }
    if let Some(w) = limits.weight {
        // `io.weight` (the default scheduler's, through io.cost), else BFQ's.
        if path.join("io.weight").exists() {
            write(&path.join("io.weight"), &format!("default {w}\n"))?;
        } else if path.join("io.bfq.weight").exists() {
            write(
                &path.join("io.bfq.weight"),
                &format!("default {}\n", w.clamp(1, 1000)),
            )?;
        } else {
            warnings.push(format!(
                "throttle.io_weight = {w} not applied: this kernel's io controller has no weight file (it needs io.cost or the BFQ I/O scheduler)"
            ));
        }
    }
    Ok(warnings)
}

/// Moves the whole process `pid` (every thread) into the cgroup folder
/// `to`.
pub fn move_process(to: &Path, pid: u32) -> io::Result<()> {
    write(&to.join("cgroup.procs"), &format!("{pid}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_line_of_a_cgroup_file() {
        // Captured on a hybrid host and in the pure v2 test guest.
        let hybrid = "12:freezer:/user.slice\n4:blkio:/user.slice\n1:name=systemd:/user.slice/user-0.slice/session-3.scope\n0::/user.slice/user-0.slice/session-3.scope\n";
        assert_eq!(
            parse_cgroup_file(hybrid),
            Some("user.slice/user-0.slice/session-3.scope")
        );
        assert_eq!(parse_cgroup_file("0::/\n"), Some(""));
        assert_eq!(parse_cgroup_file("4:blkio:/\n"), None);
        assert_eq!(parse_cgroup_file("0::/../x\n"), None);
    }

    #[test]
    fn io_max_has_one_line_per_device() {
        let l = IoLimits {
            weight: Some(50),
            read_bps: vec![((252, 0), 1 << 20), ((8, 0), 5)],
            write_bps: vec![((252, 0), 2 << 20), ((7, 3), 9)],
        };
        assert_eq!(
            io_max_lines(&l),
            vec![
                "252:0 rbps=1048576 wbps=2097152".to_owned(),
                "8:0 rbps=5".to_owned(),
                "7:3 wbps=9".to_owned()
            ]
        );
        assert!(io_max_lines(&IoLimits::default()).is_empty());
    }
}
