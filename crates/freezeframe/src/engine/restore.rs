//! Restoring one container from a tar target: checksums first, then a safe
//! extraction into an empty (or new) folder, then the config file beside it.

use std::path::{Path, PathBuf};

use crate::archive::hashing::hash_file;
use crate::archive::{extract_archive, ExtractError, ExtractReport};
use crate::sys::atomic;
use crate::sys::{Cancel, Faults};
use crate::target::manifest::{FileKind, Outcome};
use crate::target::{Store, StoreError};

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
    Repository(#[from] crate::repo::RepoError),
}

pub(super) fn dest_err(path: &Path, problem: impl Into<String>) -> RestoreError {
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
pub(super) fn sibling(to: &Path, suffix: &str) -> PathBuf {
    let mut s = to.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Restores a container's private area (and config) from `store`. A
/// cancelled restore stops between entries; what it wrote stays inside the
/// target.
pub fn restore(
    store: &Store,
    req: &RestoreRequest,
    faults: &Faults,
    cancel: &Cancel,
) -> Result<RestoreResult, RestoreError> {
    let (run, rec) = store.find_backup(&req.id, req.run.as_deref())?;
    let to = &req.to;
    let create = check_destination(req)?;
    let conf_dest = config_destination(to);
    let dump_dest = sibling(to, ".dump");
    for (kind, dest) in [(FileKind::Config, &conf_dest), (FileKind::Dump, &dump_dest)] {
        if rec.files.iter().any(|f| f.kind == kind) {
            check_sibling(dest, req.force)?;
        }
    }
    // Check every file before writing anything.
    for f in &rec.files {
        cancel.check().map_err(|e| {
            RestoreError::Extract(ExtractError::Io {
                path: f.name.clone(),
                source: e,
            })
        })?;
        let path = run.path.join(&f.name);
        let (hash, size) = hash_file(&path).map_err(|e| RestoreError::Corrupt {
            path: path.clone(),
            problem: format!("cannot read: {e}"),
        })?;
        if hash != f.blake3 || size != f.size {
            return Err(RestoreError::Corrupt {
                path,
                problem: format!(
                    "checksum mismatch (BLAKE3 {hash}, {size} bytes; manifest: {}, {} bytes)",
                    f.blake3, f.size
                ),
            });
        }
    }
    let archive = rec
        .files
        .iter()
        .find(|f| f.kind == FileKind::Archive)
        .ok_or_else(|| RestoreError::Corrupt {
            path: run.path.clone(),
            problem: format!("container {} has no archive in this run", req.id),
        })?;
    if create {
        std::fs::create_dir_all(to).map_err(|e| dest_err(to, format!("cannot create: {e}")))?;
    }
    let apath = run.path.join(&archive.name);
    let file = crate::sys::fs::open_regular(&apath).map_err(|e| RestoreError::Corrupt {
        path: apath.clone(),
        problem: e.to_string(),
    })?;
    let extract = extract_archive(file, to, &after_entry(faults, cancel))?;
    let beside = |kind: FileKind, dest: PathBuf| -> Result<Option<PathBuf>, RestoreError> {
        let Some(f) = rec.files.iter().find(|f| f.kind == kind) else {
            return Ok(None);
        };
        let src = run.path.join(&f.name);
        write_beside(&dest, req.force, |out| {
            let mut input =
                crate::sys::fs::open_regular(&src).map_err(|e| dest_err(&src, e.to_string()))?;
            std::io::copy(&mut input, out).map_err(|e| dest_err(&dest, e.to_string()))?;
            Ok(())
        })?;
        Ok(Some(dest))
    };
    let written = beside(FileKind::Config, conf_dest)?;
    let dump = beside(FileKind::Dump, dump_dest)?;
    Ok(RestoreResult {
        run: run.id.to_string(),
        partial: (rec.result == Outcome::Partial).then(|| rec.tree.warnings.clone()),
        extract,
        config: written,
        dump,
    })
}

/// Checks, before anything is written and without following a symlink,
/// that a file beside the restored folder (`<to>.conf`, `<to>.dump`) may
/// be written: nothing is there, or `force` and it is not a folder (a
/// symlink is replaced, never written through).
pub(super) fn check_sibling(dest: &Path, force: bool) -> Result<(), RestoreError> {
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

/// Checks the destination folder is new, or empty (or `force`), and its
/// config file free; `Ok(true)`: it must be created.
pub(super) fn check_destination(req: &RestoreRequest) -> Result<bool, RestoreError> {
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
pub(super) fn after_entry<'a>(
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
pub(super) fn write_beside(
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
