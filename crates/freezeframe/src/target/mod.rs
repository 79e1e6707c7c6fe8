//! Where backups go, behind one face ([`Target`]): a tar target (archives
//! in a folder per run, `tar/`) or a restic-format repository
//! (`repository/`). Both write a folder per run under the target path with
//! the run's `manifest.json` written last (`layout`, `manifest`, `store`);
//! everything else — writing a container's backup, listing, finding,
//! verifying, restoring (whole or part), browsing and pruning — is asked of
//! the face, so nothing above this layer branches on the kind.

pub mod browse;
pub mod layout;
pub mod manifest;
pub mod prune;
pub mod report;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod store;
pub mod tar;
pub mod view;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::{ArchiveOptions, TreeReport};
use crate::config::TargetConfig;
use crate::sys::{Cancel, CommandRunner, Faults};

pub use browse::{BadBrowsePath, BrowsePath, LsEntry};
pub use layout::RunId;
pub use manifest::{FileRecord, MountRecord, Outcome, SnapshotRecord};
pub use report::Report;
pub use repository::{ExtentRecord, RepoBackupRecord, RepoError};
pub use restore::{RestoreError, RestoreRequest, RestoreResult};
pub use retention::Retention;
pub use store::{Store, StoreError};

/// A target operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The run folders could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The repository could not be used.
    #[error(transparent)]
    Repository(#[from] RepoError),
    /// A restore failed.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// What was asked does not apply, or names nothing (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The operator's request names no backup, path or file that exists.
    #[error("{0}")]
    NotFound(String),
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The run was cancelled.
    #[error("interrupted")]
    Interrupted,
}

/// One container's backup in a target: a container in a run (tar) or a
/// snapshot (repository).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backup {
    /// Container id.
    pub container: String,
    /// What names it in this target: the run id (tar) or the snapshot id
    /// (repository).
    pub id: String,
    /// The run that took it.
    pub run: Option<String>,
    /// When it was taken (RFC 3339, UTC).
    pub time: String,
    /// The host that took it.
    pub host: String,
    /// Some files could not be read when it was taken.
    pub partial: bool,
    /// What could not be read, when partial.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// Which backup an operator means.
#[derive(Debug, Clone, Copy, Default)]
pub struct Which<'a> {
    /// Container id.
    pub container: &'a str,
    /// A run id (or, for a repository, a snapshot id or unique prefix);
    /// `None`: the newest complete backup.
    pub run: Option<&'a str>,
}

/// One container to back up, as the archive pool hands it to the writer.
pub struct ContainerJob<'a> {
    /// Container id.
    pub id: &'a crate::config::ContainerId,
    /// The run.
    pub run: &'a RunId,
    /// The run's folder (archives or run report).
    pub run_dir: &'a Path,
    /// This host's name.
    pub host: &'a str,
    /// The private area as the read-only snapshot shows it.
    pub source: &'a Path,
    /// The container's config file, kept with the backup.
    pub config: Option<&'a Path>,
    /// A memory dump to keep with the backup (the runtime's copy is removed
    /// once the backup is committed).
    pub dump: Option<&'a Path>,
    /// The freeze window, if the container was frozen.
    pub freeze_ms: Option<f64>,
    /// Called with each count of file bytes read; an error (a cancelled
    /// run) stops the backup.
    pub progress: &'a (dyn Fn(u64) -> io::Result<()> + Sync),
    /// Set when the run is stopped.
    pub cancel: &'a Cancel,
    /// The snapshot read, as its provider identifies it (recorded with a
    /// repository backup, so that the next run can pair with it).
    pub source_id: Option<&'a SourceId>,
    /// What the kernel says changed since a base snapshot. A repository
    /// target uses it only if the parent backup was read from exactly
    /// that base; then changed files are read only around their changes.
    pub changes: Option<&'a KernelChanges>,
    /// Entries left out (the container's exclude patterns).
    pub excludes: &'a crate::config::Excludes,
}

/// The kernel's changes for one container: each changed entry by its
/// path below the container's root in the snapshot.
pub type ChangedFiles = BTreeMap<PathBuf, crate::sys::send_stream::FileChange>;

/// A read-only snapshot's identity: btrfs subvolume UUID and generation
/// (a snapshot made writable and changed gets a new generation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceId {
    /// Subvolume UUID.
    pub uuid: String,
    /// Generation (transaction id of its last change).
    pub generation: u64,
}

impl SourceId {
    /// As recorded: `<uuid> <generation>`.
    pub fn text(&self) -> String {
        format!("{} {}", self.uuid, self.generation)
    }

    /// Reads [`SourceId::text`] back.
    pub fn parse(s: &str) -> Option<Self> {
        let (uuid, g) = s.trim().split_once(' ')?;
        Some(Self {
            uuid: uuid.to_owned(),
            generation: g.parse().ok()?,
        })
    }
}

/// The kernel's changes from a base snapshot to the one being read.
#[derive(Debug, Clone)]
pub struct KernelChanges {
    /// The base.
    pub base: SourceId,
    /// The container's changed entries.
    pub files: ChangedFiles,
}

/// What a container's backup wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The files it put into the run folder.
    pub files: Vec<FileRecord>,
    /// What the walk found.
    pub tree: TreeReport,
    /// The repository snapshot, for a repository.
    pub repository: Option<RepoBackupRecord>,
    /// Bytes it added to the target.
    pub bytes_out: u64,
}

/// A backup written but not yet part of the target: committed once the
/// source snapshot proved valid to the end, else discarded.
pub trait PendingBackup: Send {
    /// Makes it part of the target.
    fn commit(self: Box<Self>) -> Result<Written, TargetError>;
    /// Throws it away; says what became of it.
    fn discard(self: Box<Self>) -> Result<String, TargetError>;
}

/// Writes containers' backups during a run.
pub trait BackupWriter: Send + Sync {
    /// Writes one container's backup from `job.source`.
    fn write(&self, job: &ContainerJob<'_>) -> Result<Box<dyn PendingBackup>, TargetError>;
    /// Holds every write to the target (`true`) until released (`false`):
    /// another container's freeze window is open.
    fn hold(&self, held: bool);
}

/// How `verify` checks.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// Runs to check (tar targets; empty: all).
    pub runs: Vec<String>,
    /// Read and check all data (repositories; a tar target always does).
    pub read_data: bool,
    /// Read and check part of the data (repositories): `n/m`, `10%`, `2G`.
    pub read_data_subset: Option<String>,
}

/// What `prune` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    /// The keep policy.
    pub keep: Retention,
    /// Only these containers (empty: all).
    pub containers: Vec<String>,
    /// Decide and report, change nothing.
    pub dry_run: bool,
}

/// A kind of target, behind one face.
pub trait Target: Send + Sync {
    /// `tar` or `repository`.
    fn kind(&self) -> &'static str;
    /// How messages name it.
    fn describe(&self) -> String;
    /// The run folders (archives, or run reports).
    fn runs(&self) -> &Store;
    /// The writer of a run's backups (`opts`: how tar archives are made).
    fn writer(&self, opts: ArchiveOptions) -> Arc<dyn BackupWriter>;
    /// Every backup and run there is.
    fn list(&self) -> Result<Box<dyn Report>, TargetError>;
    /// The backup `which` names.
    fn find(&self, which: &Which<'_>) -> Result<Backup, TargetError>;
    /// Every backup there is, complete or partial, oldest first.
    fn backups(&self) -> Result<Vec<Backup>, TargetError>;
    /// `backup`, opened for reading at random (`freezeframe mount`).
    fn view(&self, backup: &Backup) -> Result<Arc<dyn view::BackupView>, TargetError>;
    /// Checks what is stored.
    fn verify(&self, req: &VerifyRequest) -> Result<Box<dyn Report>, TargetError>;
    /// Restores a backup (or the `req.include` paths of it).
    fn restore(
        &self,
        req: &RestoreRequest,
        faults: &Faults,
        cancel: &Cancel,
    ) -> Result<RestoreResult, TargetError>;
    /// The entries of `backup` at and below `path` (all: `None`), in path
    /// order.
    fn ls(&self, backup: &Backup, path: Option<&BrowsePath>) -> Result<Vec<LsEntry>, TargetError>;
    /// Writes the content of the regular file `path` of `backup` to `out`;
    /// returns its size.
    fn cat(
        &self,
        backup: &Backup,
        path: &BrowsePath,
        out: &mut dyn Write,
    ) -> Result<u64, TargetError>;
    /// Applies a keep policy (per container and host), under the caller's
    /// host lock (`faults`: the `mid-prune` testing aid).
    fn prune(&self, req: &PruneRequest, faults: &Faults) -> Result<Box<dyn Report>, TargetError>;
    /// Undoes what a killed process of this host left in the target (for
    /// `recover`); says what it did. A repository removes this host's
    /// lock files whose process is gone.
    fn recover(&self) -> Result<Vec<String>, TargetError> {
        Ok(Vec::new())
    }
}

/// Opens the configured target; a repository is opened (its password
/// read: a command through `runner`) now, before anything is frozen.
pub fn open(
    cfg: &TargetConfig,
    runner: &dyn CommandRunner,
) -> Result<Arc<dyn Target>, TargetError> {
    Ok(match cfg {
        TargetConfig::Tar { path } => Arc::new(tar::TarTarget::new(path)),
        TargetConfig::Repository { path, repository } => {
            Arc::new(repository::RepoTarget::open(path, repository, runner)?)
        }
    })
}

/// Creates the repository of a repository target (`freezeframe init`).
pub fn init(
    cfg: &TargetConfig,
    runner: &dyn CommandRunner,
) -> Result<repository::InitReport, TargetError> {
    match cfg {
        TargetConfig::Tar { path } => Err(TargetError::Usage(format!(
            "`init` creates repositories; this config's target is kind = \"tar\" ({}), which needs none",
            path.display()
        ))),
        TargetConfig::Repository { repository, .. } => {
            Ok(repository::Repo::init(repository, runner)?)
        }
    }
}
