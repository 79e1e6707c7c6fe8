//! Restoring one container from a tar target: checksums first, then a safe
//! extraction into an empty (or new) folder, then the config file beside it.

use std::path::{Path, PathBuf};

use super::browse::Include;
use crate::archive::compress::decoder;
use crate::archive::extract::{extract_with, Everything, Selector};
use crate::archive::hashing::hash_file;
use crate::archive::ExtractError;
use crate::sys::{Cancel, Faults};
use crate::target::manifest::{ContainerRecord, FileKind, Outcome};
use crate::target::restore::{
    after_entry, check_destination, check_sibling, config_destination, dest_err, sibling,
    write_beside, RestoreError, RestoreRequest, RestoreResult,
};
use crate::target::{Store, TargetError};

/// Restores a container's private area (and config) from `store`, or only
/// the `req.include` paths of it. A cancelled restore stops between
/// entries; what it wrote stays inside the target.
pub(super) fn restore(
    store: &Store,
    req: &RestoreRequest,
    faults: &Faults,
    cancel: &Cancel,
) -> Result<RestoreResult, TargetError> {
    let (run, rec) = store.find_backup(&req.id, req.run.as_deref())?;
    let to = &req.to;
    let create = check_destination(req)?;
    let conf_dest = config_destination(to);
    let dump_dest = sibling(to, ".dump");
    let whole = req.include.is_empty();
    for (kind, dest) in [(FileKind::Config, &conf_dest), (FileKind::Dump, &dump_dest)] {
        if whole && rec.files.iter().any(|f| f.kind == kind) {
            check_sibling(dest, req.force)?;
        }
    }
    verify_files(&run.path, &rec, cancel)?;
    let archive = rec
        .files
        .iter()
        .find(|f| f.kind == FileKind::Archive)
        .ok_or_else(|| RestoreError::Corrupt {
            path: run.path.clone(),
            problem: format!("container {} has no archive in this run", req.id),
        })?;
    let apath = run.path.join(&archive.name);
    let open = || {
        crate::sys::fs::open_regular(&apath)
            .and_then(decoder)
            .map_err(|e| RestoreError::Corrupt {
                path: apath.clone(),
                problem: e.to_string(),
            })
    };
    // A selection is checked against the archive before anything is
    // written.
    let mut select: Box<dyn Selector> = if whole {
        Box::new(Everything)
    } else {
        Box::new(Include::new(&req.include, open()?)?)
    };
    if create {
        std::fs::create_dir_all(to).map_err(|e| dest_err(to, format!("cannot create: {e}")))?;
    }
    let extract = extract_with(open()?, to, &after_entry(faults, cancel), select.as_mut())
        .map_err(RestoreError::from)?;
    let beside = |kind: FileKind, dest: PathBuf| -> Result<Option<PathBuf>, RestoreError> {
        let Some(f) = rec.files.iter().find(|f| f.kind == kind).filter(|_| whole) else {
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

/// Checks every file of a container's backup against the manifest.
fn verify_files(run: &Path, rec: &ContainerRecord, cancel: &Cancel) -> Result<(), RestoreError> {
    for f in &rec.files {
        cancel.check().map_err(|e| {
            RestoreError::Extract(ExtractError::Io {
                path: f.name.clone(),
                source: e,
            })
        })?;
        let path = run.join(&f.name);
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
    Ok(())
}
