//! What restoring asks and gives, for both kinds of target, and the checks
//! of the destination made before anything is written: a new or empty
//! folder (or `--force`), and the files beside it (`<to>.conf`,
//! `<to>.dump`) free, never through a symlink.

use std::path::{Path, PathBuf};

use super::browse::BrowsePath;
use super::store::StoreError;
use crate::archive::{ExtractError, ExtractReport};
use crate::sys::atomic;
use crate::sys::{Cancel, Faults};

/// What to restore where.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// Container id.
    pub id: String,
    /// Run to restore from (default: the newest with a good backup).
    pub run: Option<String>,
    /// Folder to restore the private area into.
    pub to: PathBuf,
    /// Allow a non-empty folder and an existing config file.
    pub force: bool,
    /// Only these paths (and the folders on their way); empty: all. The
    /// config and memory dump are not restored with a selection.
    pub include: Vec<BrowsePath>,
}

/// What was restored.
#[derive(Debug, Clone)]
pub struct RestoreResult {
    /// Run restored from.
    pub run: String,
    /// The backup was partial: what could not be read when it was taken
    /// (missing or zero-filled in the restored tree). Only a backup named
    /// with `--run` is restored when partial.
    pub partial: Option<Vec<String>>,
    /// Extraction details.
    pub extract: ExtractReport,
    /// Where the config file was written.
    pub config: Option<PathBuf>,
    /// Where the memory dump was written.
    pub dump: Option<PathBuf>,
}

/// A restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Finding the backup failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination is not usable.
    #[error("{path}: {problem}")]
    Destination {
        /// The path.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A file does not match its checksum: nothing was written.
    #[error("{path}: {problem}; nothing was restored (run `freezeframe verify`)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The mismatch.
        problem: String,
    },
    /// Extraction failed.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The repository could not be read.
    #[error(transparent)]
    Repository(#[from] super::repository::RepoError),
}

pub(crate) fn dest_err(path: &Path, problem: impl Into<String>) -> RestoreError {
    RestoreError::Destination {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// The config file goes next to the restored folder: `<to>.conf`.
pub fn config_destination(to: &Path) -> PathBuf {
    sibling(to, ".conf")
}

/// `<to><suffix>`, beside the restored folder.
pub(crate) fn sibling(to: &Path, suffix: &str) -> PathBuf {
    let mut s = to.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Checks the destination folder is new, or empty (or `force`), and its
/// config file free; `Ok(true)`: it must be created.
pub(crate) fn check_destination(req: &RestoreRequest) -> Result<bool, RestoreError> {
    let to = &req.to;
    let mut create = false;
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.is_dir() => {
            let non_empty = std::fs::read_dir(to)
                .map_err(|e| dest_err(to, e.to_string()))?
                .next()
                .is_some();
            if non_empty && !req.force {
                return Err(dest_err(
                    to,
                    "is not empty: restore into a new or empty folder, or pass --force",
                ));
            }
        }
        Ok(_) => return Err(dest_err(to, "exists and is not a folder")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create = true,
        Err(e) => return Err(dest_err(to, e.to_string())),
    }
    Ok(create)
}

/// Called after each extracted entry: the `mid-restore` fault point after
/// the first, and a cancelled restore stops there.
pub(crate) fn after_entry<'a>(
    faults: &'a Faults,
    cancel: &'a Cancel,
) -> impl Fn(u64) -> std::io::Result<()> + 'a {
    move |n| {
        if n == 1 {
            faults.hit("mid-restore", cancel);
        }
        cancel.check()
    }
}

/// Writes a file beside the restored folder (config, memory dump): under a
/// temporary name, filled by `fill`, then renamed into place; an existing
/// one is replaced only with `force`.
pub(crate) fn write_beside(
    dest: &Path,
    force: bool,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), RestoreError>,
) -> Result<(), RestoreError> {
    // A symlink is removed, not followed (`exists` would follow it).
    if force && std::fs::symlink_metadata(dest).is_ok() {
        std::fs::remove_file(dest).map_err(|e| dest_err(dest, e.to_string()))?;
    }
    let mut out = atomic::AtomicFile::create(dest).map_err(|e| dest_err(dest, e.to_string()))?;
    fill(out.file())?;
    out.commit().map_err(|e| dest_err(dest, e.to_string()))?;
    Ok(())
}

/// Checks, before anything is written and without following a symlink,
/// that a file beside the restored folder (`<to>.conf`, `<to>.dump`) may
/// be written: nothing is there, or `force` and it is not a folder (a
/// symlink is replaced, never written through).
pub(crate) fn check_sibling(dest: &Path, force: bool) -> Result<(), RestoreError> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(dest_err(dest, e.to_string())),
        Ok(m) if m.is_dir() => Err(dest_err(
            dest,
            "is a folder: remove it or restore elsewhere",
        )),
        Ok(m) if !force => Err(dest_err(
            dest,
            if m.file_type().is_symlink() {
                "exists (a symlink): remove it or pass --force (it is replaced, not followed)"
            } else {
                "exists: remove it or pass --force"
            },
        )),
        Ok(_) => Ok(()),
    }
}
