//! The incremental, deduplicating target: a restic-format repository on
//! local disk or S3-compatible object storage.
//!
//! Everything that touches `rustic_core` lives in the private [`rustic`]
//! module; the rest of freezeframe sees only the types here. A backup writes
//! one restic snapshot per container per run, read straight from the
//! read-only snapshot mount; the container's config file and memory dump
//! ride along in the same snapshot under the reserved top-level folder
//! [`RESERVED_DIR`] (see `docs/FORMAT.md`).

pub(crate) mod gomode;
mod password;
mod restore;
mod rustic;
mod target;
mod writer;

use serde::{Deserialize, Serialize};

pub use password::read_password;
pub use rustic::{InitReport, Repo};
pub use target::RepoTarget;

/// Top-level folder of each snapshot holding the container's config file
/// (`config`) and memory dump (`dump`). A container with a top-level entry
/// of this name is refused rather than silently shadowed.
pub const RESERVED_DIR: &str = ".freezeframe";

/// Tag carried by every snapshot freezeframe writes.
pub const TAG: &str = "freezeframe";
/// Tag added to a snapshot some of whose files could not be read.
pub const PARTIAL_TAG: &str = "partial";

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
    /// The container's snapshots are all from other hosts: one is taken
    /// only when named (`--run`, or a snapshot id).
    #[error("repository {location}: {message}")]
    OtherHostsOnly {
        /// The repository.
        location: String,
        /// Whose snapshots there are, and what to do.
        message: String,
    },
    /// The source or the data is not what a backup or restore can use.
    #[error("{0}")]
    Invalid(String),
    /// Another process holds a repository lock in the way (restic's lock
    /// files: a prune while a backup writes, or the reverse).
    #[error("repository {location} is locked: {holder}; wait for it to finish (a lock not refreshed for 30 minutes, or of a process no longer running on its host, is ignored)")]
    Locked {
        /// The repository.
        location: String,
        /// Who holds the lock: kind, PID, host, user, age.
        holder: String,
    },
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
    /// New data blobs (chunks the repository did not hold yet).
    #[serde(default)]
    pub data_blobs_added: u64,
    /// The extent path, when the kernel's changes were offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extents: Option<ExtentRecord>,
    /// How long the backup took, in milliseconds.
    pub duration_ms: f64,
    /// Files that could not be read (the snapshot is tagged `partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    /// Each exclude pattern and how many entries it skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<crate::archive::exclude::ExcludeRecord>,
}

/// What reading only around the kernel's changed ranges did for one
/// container (DESIGN.md §7).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtentRecord {
    /// The base snapshot the changes are from (`<uuid> <generation>`).
    pub base: String,
    /// Why the changes were not used at all (every changed file was read
    /// whole), if they were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_used: Option<String>,
    /// Changed files cut only around their changed ranges.
    pub files: u64,
    /// Bytes in those files' changed ranges.
    pub changed_bytes: u64,
    /// Changed files read whole instead, by reason.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fallbacks: std::collections::BTreeMap<String, u64>,
    /// Some of those files, with their reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
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

/// What is stored beside a restored snapshot's tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoredSnapshot {
    /// The config file stored with it, if any.
    pub config: Option<Vec<u8>>,
    /// Whether it holds a memory dump.
    pub has_dump: bool,
}
