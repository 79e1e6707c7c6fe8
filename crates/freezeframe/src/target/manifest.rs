//! `manifest.json`: what a run holds, written last. Its presence is what
//! makes a run complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::archive::TreeReport;
use crate::config::{BadContainerId, Compression, Mode, RuntimeKind, Strategy};

/// Version of the manifest format. Bump on incompatible changes.
pub const MANIFEST_VERSION: u32 = 1;

/// Largest manifest read (a run of hundreds of containers with thousands
/// of warnings is a few MiB).
pub const MAX_MANIFEST: u64 = 64 << 20;

/// A run's manifest that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestError {
    /// There is none: the run is incomplete (or being written).
    #[error("incomplete: no manifest")]
    Missing,
    /// It could not be read, or is not a regular file of a sane size.
    #[error("{}: {source}", path.display())]
    Unreadable {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// It is not JSON of the manifest's shape.
    #[error("{}: not a valid manifest: {source}", path.display())]
    Malformed {
        /// The manifest file.
        path: PathBuf,
        /// The parser's word.
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// Another version of the format.
    #[error("{}: manifest version {found} is not supported (this freezeframe reads version {MANIFEST_VERSION})", path.display())]
    Version {
        /// The manifest file.
        path: PathBuf,
        /// The version it says.
        found: u32,
    },
    /// It names something a run cannot hold.
    #[error("{}: not a valid manifest: {problem}", path.display())]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// What it names.
        #[source]
        problem: ManifestProblem,
    },
    /// It is another run's (copied or planted here).
    #[error("{}: the manifest is of run {run:?}, not of this folder", path.display())]
    OtherRun {
        /// The manifest file.
        path: PathBuf,
        /// The run it names.
        run: String,
    },
}

/// What makes a parsed manifest unusable ([`Manifest::check`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestProblem {
    /// A container id no config could hold.
    #[error(transparent)]
    BadId(#[from] BadContainerId),
    /// A container listed twice.
    #[error("container `{0}` is listed twice")]
    Twice(String),
    /// A file that is not one a run writes for the container.
    #[error("container `{id}` names the file {name:?} ({kind:?}), which is not a file a run writes for it")]
    StrayFile {
        /// The container.
        id: String,
        /// The file name.
        name: String,
        /// What it claims to be.
        kind: FileKind,
    },
}

/// The result of one container's backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Complete and consistent.
    Ok,
    /// Written, but some files could not be read (see warnings).
    Partial,
    /// Not backed up; `error` says why.
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
        })
    }
}

/// What a file in the run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// The private area as a tar archive.
    Archive,
    /// The container's config file.
    Config,
    /// A memory checkpoint (`vzctl chkpnt` dump).
    Dump,
}

/// One file of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// File name inside the run folder.
    pub name: String,
    /// What it holds.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3, hex.
    pub blake3: String,
}

/// The instants of a freeze window, in ns since the Unix epoch (wall clock).
/// `freeze_ms` runs from `requested_ns` to `thawed_ns`; the container's
/// processes cannot run between `frozen_ns` and `thaw_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeWindow {
    /// The freeze was requested.
    pub requested_ns: i128,
    /// The kernel confirmed every process frozen.
    pub frozen_ns: i128,
    /// The thaw was requested.
    pub thaw_ns: i128,
    /// The thaw was done.
    pub thawed_ns: i128,
}

/// Durations of a container's phases, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Freeze start → thaw done: the window the container was stopped.
    pub freeze_ms: Option<f64>,
    /// Snapshot creation (inside the freeze window).
    pub snapshot_ms: Option<f64>,
    /// Archiving from the snapshot.
    pub archive_ms: Option<f64>,
    /// Everything for this container.
    pub total_ms: f64,
}

/// One container in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Container id.
    pub id: String,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// Volume of its private area.
    pub volume: String,
    /// How it was brought to rest (`None`: it was stopped, archived live).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Something the operator should know (a fallback, a stopped container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Result.
    pub result: Outcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Freeze window in milliseconds (also in `timings`).
    pub freeze_ms: Option<f64>,
    /// When the freeze window's steps happened (wall clock).
    pub window: Option<FreezeWindow>,
    /// Phase durations.
    pub timings: Timings,
    /// Bytes of file data read.
    pub bytes_in: u64,
    /// Bytes written (all files).
    pub bytes_out: u64,
    /// Files of this container in the run.
    pub files: Vec<FileRecord>,
    /// What the walk found (entries, unreadable files, sockets, warnings).
    pub tree: TreeReport,
    /// The repository snapshot written (`repository` targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<crate::target::repository::RepoBackupRecord>,
    /// File systems mounted inside the private area (their contents are
    /// not in the backup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountRecord>,
}

/// A file system mounted inside a container's private area when its backup
/// was planned. The backup holds what lies *under* the mount point on the
/// volume, not what the mount showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// The mount point, relative to the private area (`.`: the private
    /// area itself), escaped (`sys::shown::escape`) like every name below.
    pub path: String,
    /// File system type (`tmpfs`, `btrfs`, …), escaped.
    pub fs_type: String,
    /// Mount source (device, `tmpfs`, …), escaped.
    pub source: String,
}

impl MountRecord {
    /// The warning a run gives for it.
    pub fn warning(&self) -> String {
        format!(
            "{} is a mount point ({} from {}) inside the private area: the backup holds what \
             lies under it on the volume, not the mounted file system's contents",
            self.path, self.fs_type, self.source
        )
    }
}

/// A snapshot the run read from, and how full it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Snapshot name.
    pub name: String,
    /// Volume it was taken of.
    pub volume: String,
    /// Highest copy-on-write usage seen while it was read, % (LVM).
    pub peak_used_percent: Option<f64>,
    /// Times it was grown by autoextend.
    pub extended: u32,
    /// Why it became invalid, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// Kept as the base of the next run (DESIGN.md §7) instead of removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept_as_base: bool,
}

/// The manifest of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// freezeframe version that wrote it.
    pub tool: String,
    /// Run id (the folder name).
    pub run: String,
    /// Host name.
    pub host: String,
    /// Run start.
    pub started_at: DateTime<Utc>,
    /// Run end.
    pub finished_at: DateTime<Utc>,
    /// Mode.
    pub mode: Mode,
    /// Strategy.
    pub strategy: Strategy,
    /// Compression of the archives.
    pub compression: Compression,
    /// Compression level.
    pub level: i32,
    /// One record per container.
    pub containers: Vec<ContainerRecord>,
    /// Snapshots the run read from.
    #[serde(default)]
    pub snapshots: Vec<SnapshotRecord>,
    /// Problems of the run as a whole (e.g. a snapshot that was not removed).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Manifest {
    /// Reads, parses and checks a manifest file: a regular file (no
    /// symlink, FIFO or device) of at most [`MAX_MANIFEST`] bytes, whose
    /// every container id and file name is one a run can hold
    /// ([`Manifest::check`]).
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = crate::sys::fs::read_regular(path, MAX_MANIFEST).map_err(|e| {
            ManifestError::Unreadable {
                path: path.to_owned(),
                source: Arc::new(e),
            }
        })?;
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| ManifestError::Malformed {
            path: path.to_owned(),
            source: Arc::new(e),
        })?;
        if m.version != MANIFEST_VERSION {
            return Err(ManifestError::Version {
                path: path.to_owned(),
                found: m.version,
            });
        }
        m.check().map_err(|problem| ManifestError::Invalid {
            path: path.to_owned(),
            problem,
        })?;
        Ok(m)
    }

    /// Checks what the manifest names, as the config checks ids: every
    /// container id valid and listed once, and every file one this run
    /// writes for that container (`<id>.tar.zst`, `<id>.conf`, …), a plain
    /// name inside the run folder.
    pub fn check(&self) -> Result<(), ManifestProblem> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.containers {
            let id = crate::config::ContainerId::new(&c.id)?;
            if !seen.insert(c.id.as_str()) {
                return Err(ManifestProblem::Twice(c.id.clone()));
            }
            for f in &c.files {
                let expected = match f.kind {
                    FileKind::Archive => [
                        Compression::Zstd,
                        Compression::Bzip2,
                        Compression::Gzip,
                        Compression::None,
                    ]
                    .iter()
                    .any(|c| f.name == crate::target::layout::archive_name(&id, *c)),
                    FileKind::Config => f.name == crate::target::layout::config_name(&id),
                    FileKind::Dump => f.name == crate::target::layout::dump_name(&id),
                };
                if !expected {
                    return Err(ManifestProblem::StrayFile {
                        id: c.id.clone(),
                        name: f.name.clone(),
                        kind: f.kind,
                    });
                }
            }
        }
        Ok(())
    }

    /// The run's result judged by its containers alone: `failed` if every
    /// one failed, `partial` if any is not ok, else `ok`.
    pub fn containers_outcome(&self) -> Outcome {
        if self.containers.iter().all(|c| c.result == Outcome::Failed) {
            Outcome::Failed
        } else if self.containers.iter().any(|c| c.result != Outcome::Ok) {
            Outcome::Partial
        } else {
            Outcome::Ok
        }
    }

    /// The record of container `id`.
    pub fn container(&self, id: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.id == id)
    }
}
