//! The FUSE mounts `freezeframe mount` serves: each process records its
//! mount under `state_dir/mounts/<pid>.json` once it is mounted and
//! removes the record when it has unmounted. A process killed with
//! SIGKILL leaves the kernel's mount behind (every access then fails with
//! "Transport endpoint is not connected"); `recover` and `freezeframe
//! umount` find it by its record and remove it — only a mount the mount
//! table still shows as freezeframe's, at the recorded path.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys::mountinfo::MountEntry;
use crate::sys::{process, Cmd, CommandRunner};

/// The source the mount table shows for freezeframe's mounts (type
/// `fuse`; `fuse.freezeframe` where the mount was made with a subtype).
pub const FS_NAME: &str = "freezeframe";

/// One served mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedMount {
    /// Where it is mounted (canonical).
    pub mount_point: PathBuf,
    /// The serving process.
    pub pid: u32,
    /// Its start time (clock ticks since boot), so that a reused PID is
    /// not taken for it.
    pub started: u64,
}

impl ServedMount {
    /// Whether its process is still the one that mounted it.
    pub fn alive(&self) -> bool {
        process::alive(self.pid, self.started)
    }
}

/// A mount failed to be recorded, found or removed.
#[derive(Debug, thiserror::Error)]
pub enum MountsError {
    /// The records could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The path is not a mount of freezeframe's.
    #[error("{0} is not a freezeframe mount (see `findmnt --source {FS_NAME}`); nothing was done")]
    NotOurs(String),
    /// `umount` failed.
    #[error("{0}")]
    Unmount(String),
}

/// The records of one state dir.
#[derive(Debug, Clone)]
pub struct Mounts {
    dir: PathBuf,
}

impl Mounts {
    /// The records kept under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Mounts {
            dir: state_dir.join("mounts"),
        }
    }

    fn path_of(&self, pid: u32) -> PathBuf {
        self.dir.join(format!("{pid}.json"))
    }

    /// Records this process's mount at `mount_point`.
    pub fn record(&self, mount_point: &Path) -> Result<ServedMount, MountsError> {
        let (pid, started) = process::me();
        let m = ServedMount {
            mount_point: mount_point.to_owned(),
            pid,
            started,
        };
        let io = |source| MountsError::Io {
            what: format!("recording the mount in {}", self.dir.display()),
            source,
        };
        super::ensure_dir(&self.dir).map_err(io)?;
        let text = serde_json::to_vec_pretty(&m).map_err(|e| io(io::Error::other(e)))?;
        crate::sys::atomic::replace(&self.path_of(pid), &text).map_err(io)?;
        Ok(m)
    }

    /// Removes the record of `m`.
    pub fn forget(&self, m: &ServedMount) -> Result<(), MountsError> {
        match std::fs::remove_file(self.path_of(m.pid)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(MountsError::Io {
                what: format!(
                    "removing the record of the mount at {}",
                    m.mount_point.display()
                ),
                source,
            }),
        }
    }

    /// Every readable record (a damaged one is skipped: it names nothing
    /// that could be checked).
    pub fn list(&self) -> Vec<ServedMount> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<ServedMount> = rd
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by_key(|m| m.pid);
        out
    }
}

/// Whether the mount table shows a freezeframe mount at `path`.
pub fn is_ours(table: &[MountEntry], path: &Path) -> bool {
    table
        .iter()
        .rev()
        .find(|e| e.mount_point == path)
        .is_some_and(|e| {
            (e.fs_type == "fuse" || e.fs_type == "fuse.freezeframe") && e.source == FS_NAME
        })
}

/// Unmounts the freezeframe mount at `path` (a live server then exits on
/// its own; a dead one's mount is detached).
pub fn unmount(
    runner: &dyn CommandRunner,
    table: &[MountEntry],
    path: &Path,
    served_alive: bool,
) -> Result<(), MountsError> {
    if !is_ours(table, path) {
        return Err(MountsError::NotOurs(path.display().to_string()));
    }
    let cmd = if served_alive {
        Cmd::new("umount").arg(path)
    } else {
        Cmd::new("umount").arg("--lazy").arg(path)
    };
    runner
        .run(&cmd)
        .map(|_| ())
        .map_err(|e| MountsError::Unmount(e.to_string()))
}

/// What [`sweep`] did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Mounts removed and records dropped.
    pub actions: Vec<String>,
    /// What could not be removed.
    pub failures: Vec<String>,
}

/// Removes what killed mount processes left: their mounts (if the table
/// still shows them as freezeframe's) and their records.
pub fn sweep(mounts: &Mounts, runner: &dyn CommandRunner, table: &[MountEntry]) -> Swept {
    let mut out = Swept::default();
    for m in mounts.list() {
        if m.alive() {
            continue;
        }
        let shown = m.mount_point.display();
        match unmount(runner, table, &m.mount_point, false) {
            Ok(()) => out.actions.push(format!(
                "unmounted {shown}, left by mount process {} (gone)",
                m.pid
            )),
            // Already gone (or something else is mounted there now).
            Err(MountsError::NotOurs(_)) => {}
            Err(e) => {
                out.failures.push(format!("unmounting {shown}: {e}"));
                continue;
            }
        }
        match mounts.forget(&m) {
            Ok(()) => out.actions.push(format!(
                "dropped the record of mount process {} at {shown}",
                m.pid
            )),
            Err(e) => out.failures.push(e.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str, fs_type: &str) -> MountEntry {
        MountEntry {
            dev: (0, 50),
            mount_point: PathBuf::from(at),
            fs_type: fs_type.into(),
            source: "freezeframe".into(),
            root: PathBuf::from("/"),
            super_options: "rw".into(),
        }
    }

    #[test]
    fn only_a_freezeframe_mount_on_top_counts_as_ours() {
        let mut sshfs = entry("/mnt/b", "fuse");
        sshfs.source = "host:/x".into();
        let t = vec![entry("/mnt/a", "fuse"), sshfs, entry("/mnt/c", "ext4")];
        assert!(is_ours(&t, Path::new("/mnt/a")));
        assert!(!is_ours(&t, Path::new("/mnt/b")));
        assert!(!is_ours(&t, Path::new("/mnt/c")));
        assert!(!is_ours(&t, Path::new("/mnt")));
        // Something mounted over ours hides it.
        let t = vec![entry("/mnt/a", "fuse"), entry("/mnt/a", "tmpfs")];
        assert!(!is_ours(&t, Path::new("/mnt/a")));
    }

    #[test]
    fn records_round_trip_and_a_live_one_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let m = Mounts::new(d.path());
        let r = m.record(Path::new("/mnt/x")).unwrap();
        assert_eq!(m.list(), vec![r.clone()]);
        assert!(r.alive());
        let swept = sweep(&m, &crate::sys::SystemRunner, &[entry("/mnt/x", "fuse")]);
        assert!(swept.actions.is_empty() && swept.failures.is_empty());
        m.forget(&r).unwrap();
        assert!(m.list().is_empty());
    }

    #[test]
    fn a_dead_record_without_its_mount_is_dropped_without_unmounting() {
        let d = tempfile::tempdir().unwrap();
        let m = Mounts::new(d.path());
        let dead = ServedMount {
            mount_point: PathBuf::from("/mnt/gone"),
            pid: u32::MAX - 1,
            started: 1,
        };
        std::fs::create_dir_all(d.path().join("mounts")).unwrap();
        std::fs::write(m.path_of(dead.pid), serde_json::to_vec(&dead).unwrap()).unwrap();
        // `umount` would fail here (nothing mounted): it must not be run.
        let swept = sweep(&m, &crate::sys::SystemRunner, &[entry("/mnt/gone", "ext4")]);
        assert!(swept.failures.is_empty(), "{:?}", swept.failures);
        assert_eq!(swept.actions.len(), 1);
        assert!(m.list().is_empty());
    }
}
