//! The incremental, deduplicating target: a restic-format repository on
//! local disk or S3-compatible object storage.
//!
//! Everything that touches `rustic_core` lives in the private [`rustic`]
//! module; the rest of freezeframe sees only the types here. A backup writes
//! one restic snapshot per container per run, read straight from the
//! read-only snapshot mount; the container's config file and memory dump
//! ride along in the same snapshot under the reserved top-level folder
//! [`RESERVED_DIR`] (see `docs/FORMAT.md`).

mod gomode;
mod password;
mod retention;
mod rustic;
pub(crate) mod split;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use password::PasswordSource;
pub use retention::Retention;
pub use rustic::Repo;

/// Top-level folder of each snapshot holding the container's config file
/// (`config`) and memory dump (`dump`). A container with a top-level entry
/// of this name is refused rather than silently shadowed.
pub const RESERVED_DIR: &str = ".freezeframe";

/// zstd level of a new repository unless `target.compression` says
/// otherwise: level 1 backs up about 1.5× faster than zstd's default (3)
/// for a few percent more space (see `docs/BENCHMARKS.md`).
pub const DEFAULT_COMPRESSION: i32 = 1;

/// Tag carried by every snapshot freezeframe writes.
pub const TAG: &str = "freezeframe";
/// Tag added to a snapshot some of whose files could not be read.
pub const PARTIAL_TAG: &str = "partial";

/// Where the repository lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Location {
    /// A folder on a local (or mounted) file system.
    Local {
        /// The repository folder.
        path: PathBuf,
    },
    /// An S3-compatible bucket (written `opendal:s3` in the config).
    S3(S3Options),
}

/// S3 settings; the keys fall back to `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` in the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3Options {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// Region (any value for most non-AWS stores).
    pub region: String,
    /// Folder inside the bucket holding the repository (`/` for all of it).
    pub root: String,
    /// Access key id (else from the environment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Secret key (else from the environment). Never printed.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
}

impl Location {
    /// How the location reads in messages (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Location::Local { path } => path.display().to_string(),
            Location::S3(s) => format!(
                "s3://{}/{} at {}",
                s.bucket,
                s.root.trim_start_matches('/'),
                s.endpoint
            ),
        }
    }
}

/// Everything needed to open (or create) a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoSpec {
    /// Where it lives.
    pub location: Location,
    /// Where its password comes from.
    pub password: PasswordSource,
    /// Local cache of index and snapshot files (none: no cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// zstd level for data written to the repository, fixed at `init`
    /// (`None`: [`DEFAULT_COMPRESSION`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<i32>,
    /// Most archivers one container is read by at once (`None`:
    /// [`split::MAX_PARTS`]; 1: large files are not read separately).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parts: Option<usize>,
}

/// Errors of the repository target.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The password could not be obtained.
    #[error("repository password: {0}")]
    Password(String),
    /// The repository could not be opened (missing, or a wrong password).
    #[error("repository {location}: {message}")]
    Open {
        /// The repository.
        location: String,
        /// Why, and what to do.
        message: String,
    },
    /// A repository operation failed (the message carries rustic's context).
    #[error("repository {location}: {what}: {message}")]
    Repository {
        /// The repository, as [`Location::describe`] writes it.
        location: String,
        /// What was being done.
        what: String,
        /// The error, with its context.
        message: String,
    },
    /// Nothing matched a snapshot selection.
    #[error("repository {location}: {message}")]
    NotFound {
        /// The repository.
        location: String,
        /// What was looked for.
        message: String,
    },
    /// The source or the data is not what a backup or restore can use.
    #[error("{0}")]
    Invalid(String),
    /// The run was cancelled.
    #[error("interrupted")]
    Interrupted,
    /// The side reading a restore stream stopped (its own error says why).
    #[error("the restore stream was closed: {0}")]
    StreamClosed(String),
}

impl RepoError {
    /// Whether this only says that the reader of a stream went away (so
    /// the reader's own error is the cause to report).
    pub fn is_consumer_gone(&self) -> bool {
        matches!(self, RepoError::StreamClosed(_))
    }
}

/// One container to back up into the repository.
#[derive(Debug, Clone)]
pub struct ContainerBackup<'a> {
    /// Container id (the snapshot label and the `ct:<id>` tag).
    pub id: &'a str,
    /// Run id (the `run:<run>` tag).
    pub run: &'a str,
    /// Host name recorded in the snapshot.
    pub host: &'a str,
    /// The container's private area as seen in the read-only snapshot.
    pub source: &'a Path,
    /// Its config file, stored as `.freezeframe/config`.
    pub config: Option<&'a Path>,
    /// Its memory dump, stored as `.freezeframe/dump`.
    pub dump: Option<&'a Path>,
    /// Freeze window of this run, recorded in the snapshot's description.
    pub freeze_ms: Option<f64>,
}

/// What one container's backup did, as recorded in the run manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoBackupRecord {
    /// The restic snapshot id.
    pub snapshot: String,
    /// The parent snapshot whose unchanged files were not re-read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Files not in the parent.
    pub files_new: u64,
    /// Files changed since the parent.
    pub files_changed: u64,
    /// Files unchanged since the parent (not re-read).
    pub files_unchanged: u64,
    /// Bytes of file data read from the snapshot.
    pub bytes_read: u64,
    /// Bytes of new data added to the repository (before compression).
    pub bytes_added: u64,
    /// Bytes added to the repository after compression and encryption.
    pub bytes_added_packed: u64,
    /// How long the backup took, in milliseconds.
    pub duration_ms: f64,
    /// How many archivers read the container side by side (see `split`).
    #[serde(default)]
    pub parts: u32,
    /// Files that could not be read (the snapshot is tagged `partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
}

/// A snapshot as `list` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SnapshotInfo {
    /// Snapshot id (hex).
    pub id: String,
    /// When it was taken (RFC 3339, UTC, whole seconds).
    pub time: String,
    /// Host that wrote it.
    pub host: String,
    /// Container id (the label).
    pub container: String,
    /// freezeframe run id, from the `run:` tag.
    pub run: Option<String>,
    /// All tags.
    pub tags: Vec<String>,
    /// Whether some files could not be read when it was taken.
    pub partial: bool,
    /// What could not be read, as its description records it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Files and bytes it holds.
    pub files: u64,
    /// Bytes of file data it holds.
    pub bytes: u64,
    /// Bytes it added to the repository.
    pub bytes_added: u64,
}

/// Which snapshot to restore.
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// Container id.
    pub container: &'a str,
    /// A run id, a snapshot id (or unique prefix); the latest when unset.
    pub which: Option<&'a str>,
}

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckReport {
    /// Errors (the repository is damaged).
    pub errors: Vec<String>,
    /// Warnings (nothing is lost).
    pub warnings: Vec<String>,
}

/// One snapshot's fate in a prune plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneDecision {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// Kept?
    pub keep: bool,
    /// Why it is kept (the retention rules that hold it).
    pub reasons: Vec<String>,
}

/// What prune did or would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PruneReport {
    /// Every freezeframe snapshot considered, per container, newest first.
    pub decisions: Vec<PruneDecision>,
    /// Pack files marked for deletion (removed by a later prune after the grace time).
    pub packs_marked: u64,
    /// Pack files removed now (marked by an earlier prune, grace time over).
    pub packs_removed: u64,
    /// Pack files repacked.
    pub packs_repacked: u64,
    /// Bytes no longer referenced by any snapshot.
    pub bytes_unused: u64,
}

/// What is stored beside a restored snapshot's tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoredSnapshot {
    /// The config file stored with it, if any.
    pub config: Option<Vec<u8>>,
    /// Whether it holds a memory dump.
    pub has_dump: bool,
}
