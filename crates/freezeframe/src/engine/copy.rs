//! `restore ID --as NEWID`: a backup restored as a new container its
//! runtime knows. The runtime says where everything goes before anything
//! is written ([`Runtime::plan_copy`], which refuses an id it knows);
//! the backup is restored into a staging folder beside the destination;
//! the runtime rewrites the backup's config for the new id; owners are
//! shifted (`--map-ids`); the folder is moved into place with one rename
//! that never replaces anything; writing the config, last, registers it.
//!
//! Every step that must be undone is journaled first (the staging folder,
//! then the folder moved into place until its config exists), so a failure,
//! a signal or SIGKILL leaves nothing half-registered: the process undoes it,
//! or the next `recover` does.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cleanup::{Cleanup, RegisterError, Undo, UndoError};
use crate::archive::idshift::{shift_tree, ShiftReport};
use crate::runtime::copy::{CopiedConfig, CopyPlan, CopyRequest};
use crate::runtime::{Runtime, RuntimeError};
use crate::state::{Journal, JournalError, Step};
use crate::sys::atomic::AtomicFile;
use crate::sys::fs::fsync_dir;
use crate::sys::{Cancel, Faults};
use crate::target::{RestoreRequest, RestoreResult, Target, TargetError};

/// Names of staging folders start so (after a `.`): `recover` removes only
/// folders named so that a journal records.
pub const STAGING_MARK: &str = ".freezeframe-restore-";

/// What was restored and registered.
#[derive(Debug, Clone)]
pub struct CopyResult {
    /// The restore itself (run, partial, entries).
    pub restore: RestoreResult,
    /// The new folder.
    pub folder: PathBuf,
    /// The restored tree (the folder, or inside it).
    pub tree: PathBuf,
    /// The config written, which registered the copy.
    pub config: Option<PathBuf>,
    /// For the operator to add to freezeframe's config (cgroup).
    pub entry: Option<String>,
    /// What was changed or dropped, and what to check.
    pub notes: Vec<String>,
    /// Owners shifted (`--map-ids`).
    pub shifted: Option<ShiftReport>,
}

/// A copy could not be made; nothing of it is left registered.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The runtime refused or could not rewrite the config.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Restoring failed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A step could not be journaled, so it was not done.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Where the copy would go is not usable.
    #[error("{}: {problem}; nothing was written", path.display())]
    Destination {
        /// The path.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A file operation failed.
    #[error("{}: {problem}; nothing was registered", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What failed.
        problem: String,
    },
}

fn io_err(path: &Path, problem: impl std::fmt::Display) -> CopyError {
    CopyError::Io {
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

/// A restored copy moved into place, identified by device and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Where it is.
    pub path: PathBuf,
    /// Its device.
    pub dev: u64,
    /// Its inode.
    pub ino: u64,
    /// Once this file exists, the copy is registered and stays.
    pub registered_by: PathBuf,
}

impl Placed {
    pub(super) fn step(&self) -> Step {
        Step::CopyPlaced {
            path: self.path.clone(),
            dev: self.dev,
            ino: self.ino,
            registered_by: self.registered_by.clone(),
        }
    }

    /// Removes the folder if it is still the one moved there and its
    /// config was not written; `Ok(true)`: it was removed.
    pub fn remove(&self) -> Result<bool, UndoError> {
        if std::fs::symlink_metadata(&self.registered_by).is_ok() {
            return Ok(false);
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_dir() && m.dev() == self.dev && m.ino() == self.ino => {
                std::fs::remove_dir_all(&self.path).map_err(|source| UndoError::Remove {
                    path: self.path.clone(),
                    source,
                })?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Removes a staging folder (only one named as such); `Ok(true)`: it was
/// there.
pub fn remove_staging(path: &Path) -> Result<bool, UndoError> {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(STAGING_MARK));
    if !named {
        return Err(UndoError::NotAStagingFolder(path.to_owned()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)
            .map(|()| true)
            .map_err(|source| UndoError::Remove {
                path: path.to_owned(),
                source,
            }),
        _ => Ok(false),
    }
}

/// Renames `from` to `to`, failing if `to` exists (even an empty folder).
fn rename_new(from: &Path, to: &Path) -> Result<(), CopyError> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| match e {
        rustix::io::Errno::EXIST => io_err(to, "appeared meanwhile; nothing was replaced"),
        e => io_err(to, format!("cannot move the restored copy here: {e}")),
    })?;
    if let Some(p) = to.parent() {
        fsync_dir(p).map_err(|e| io_err(p, e))?;
    }
    Ok(())
}

/// What `restore_as` needs besides the runtime's request.
pub struct CopySource<'a> {
    /// The run (or snapshot) to restore (`None`: the newest good one).
    pub run: Option<String>,
    /// The state dir whose journal records the steps.
    pub state_dir: &'a Path,
}

/// Restores `req.source` as the new container `req.new_id` of `runtime`.
pub fn restore_as(
    target: &dyn Target,
    runtime: &dyn Runtime,
    req: &CopyRequest,
    src: &CopySource<'_>,
    faults: &Faults,
    cancel: &Cancel,
) -> Result<CopyResult, CopyError> {
    check_request(req)?;
    let plan = runtime.plan_copy(req)?;
    let staging = staging_for(&plan, req)?;
    let journal = Journal::open(src.state_dir, &format!("restore-{}", req.new_id.as_str()))?;
    let cleanup = Cleanup::new(Some(Arc::new(journal)));
    let staged = cleanup.register_all(vec![Undo::CopyStaging(staging.clone())])?;
    // Only root looks in while it fills; its mode is set before it moves.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| io_err(&staging, e))?;
    let tree_in_staging = staging.join(plan.tree.as_deref().unwrap_or(Path::new("tree")));
    let restore = target.restore(
        &RestoreRequest {
            id: req.source.to_string(),
            run: src.run.clone(),
            to: tree_in_staging.clone(),
            force: false,
            include: Vec::new(),
        },
        faults,
        cancel,
    )?;
    let archived = read_archived(&restore)?;
    let copied = runtime.copy_config(req, archived.as_deref())?;
    let shifted = match &copied.shift {
        Some(s) => Some(shift_tree(&tree_in_staging, s).map_err(|e| {
            io_err(
                &tree_in_staging,
                format!("shifting owners (--map-ids): {e}"),
            )
        })?),
        None => None,
    };
    cancel
        .check()
        .map_err(|e| io_err(&plan.folder, format!("restore interrupted: {e}")))?;
    faults.hit("before-register", cancel);
    let moving = Moving {
        staging: &staging,
        tree: &tree_in_staging,
    };
    place(&cleanup, &plan, &copied, &moving, faults, cancel)?;
    // What is left of the staging folder (the config the restore wrote,
    // or nothing when the folder itself moved) goes.
    for t in staged {
        cleanup.undo_now(t).map_err(|e| io_err(&staging, e))?;
    }
    Ok(CopyResult {
        restore: RestoreResult {
            config: None,
            dump: None,
            ..restore
        },
        tree: match &plan.tree {
            Some(t) => plan.folder.join(t),
            None => plan.folder.clone(),
        },
        folder: plan.folder,
        config: plan.config,
        entry: copied.entry,
        notes: copied.notes,
        shifted,
    })
}

/// What no runtime accepts: a bad `--hostname`, the source's own id.
fn check_request(req: &CopyRequest) -> Result<(), CopyError> {
    if let Some(h) = &req.hostname {
        crate::runtime::copy::check_hostname(h).map_err(|m| req.invalid(m))?;
    }
    if req.new_id == req.source {
        return Err(req
            .invalid("--as names the backed-up container itself: pick a new id")
            .into());
    }
    Ok(())
}

/// The staging folder: beside the copy's place (so one rename moves it),
/// named for the copy and this process.
fn staging_for(plan: &CopyPlan, req: &CopyRequest) -> Result<PathBuf, CopyError> {
    let parent =
        plan.folder
            .parent()
            .filter(|p| p.is_dir())
            .ok_or_else(|| CopyError::Destination {
                path: plan.folder.clone(),
                problem: "its parent folder does not exist: create it first".into(),
            })?;
    Ok(parent.join(format!(
        "{STAGING_MARK}{}-{}",
        req.new_id.as_str(),
        std::process::id()
    )))
}

/// The filled staging folder and the tree in it.
struct Moving<'a> {
    staging: &'a Path,
    tree: &'a Path,
}

/// The backup's config, as the restore wrote it beside the tree; the
/// restore's config and dump files are removed from the staging folder.
fn read_archived(r: &RestoreResult) -> Result<Option<String>, CopyError> {
    if let Some(d) = &r.dump {
        std::fs::remove_file(d).map_err(|e| io_err(d, e))?;
    }
    let Some(c) = &r.config else {
        return Ok(None);
    };
    let bytes = std::fs::read(c).map_err(|e| io_err(c, e))?;
    std::fs::remove_file(c).map_err(|e| io_err(c, e))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| io_err(c, "the backed-up config is not UTF-8 text"))
}

/// Moves the copy into place and writes its config, journaling the placed
/// folder until the config exists.
fn place(
    cleanup: &Cleanup,
    plan: &CopyPlan,
    copied: &CopiedConfig,
    filled: &Moving<'_>,
    faults: &Faults,
    cancel: &Cancel,
) -> Result<(), CopyError> {
    // The folder that moves: the staging folder itself when the tree is
    // inside it (LXC's rootfs/), else the tree.
    let moving = if plan.tree.is_some() {
        filled.staging
    } else {
        filled.tree
    };
    if plan.tree.is_some() {
        std::fs::set_permissions(moving, std::fs::Permissions::from_mode(plan.folder_mode))
            .map_err(|e| io_err(moving, e))?;
        if let Some((uid, gid)) = copied.folder_owner {
            std::os::unix::fs::lchown(moving, Some(uid), Some(gid))
                .map_err(|e| io_err(moving, e))?;
        }
    }
    let m = std::fs::symlink_metadata(moving).map_err(|e| io_err(moving, e))?;
    let placed = match &plan.config {
        Some(config) => Some(cleanup.register_all(vec![Undo::CopyPlaced(Placed {
            path: plan.folder.clone(),
            dev: m.dev(),
            ino: m.ino(),
            registered_by: config.clone(),
        })])?),
        None => None,
    };
    rename_new(moving, &plan.folder)?;
    if let (Some(config), Some(text)) = (&plan.config, &copied.text) {
        faults.hit("before-registering-config", cancel);
        write_config(config, text)?;
    }
    if let Some(t) = placed {
        cleanup.done_all(&t);
    }
    Ok(())
}

/// Writes the registering config: complete or not at all, never over an
/// existing file.
fn write_config(path: &Path, text: &str) -> Result<(), CopyError> {
    let mut f = AtomicFile::create(path).map_err(|e| io_err(path, e))?;
    f.file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|()| f.file().write_all(text.as_bytes()))
        .map_err(|e| io_err(path, e))?;
    f.commit().map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            io_err(path, "appeared meanwhile; nothing was replaced")
        }
        _ => io_err(path, e),
    })?;
    Ok(())
}
