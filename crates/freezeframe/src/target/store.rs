//! Reading and creating runs in a tar target: list, find, verify.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::layout::{RunId, MANIFEST_NAME, RUN_OWNER_NAME};
use super::manifest::{ContainerRecord, FileKind, FileRecord, Manifest, ManifestError, Outcome};
use crate::archive::hashing::hash_file;
use crate::sys::Owner;

/// A target operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The target folder cannot be used.
    #[error("target {path}: {source} (check [target] path in the config and that it is writable)")]
    Target {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No run has this name.
    #[error("no run `{0}` in the target (see `freezeframe list`)")]
    NoSuchRun(String),
    /// The run has no manifest: it never finished.
    #[error("run `{0}` is incomplete (no manifest): it was interrupted and cannot be restored")]
    Incomplete(String),
    /// The container has no usable backup.
    #[error("no good backup of container `{id}` {scope} (see `freezeframe list`)")]
    NoBackup {
        /// Container id.
        id: String,
        /// Where we looked.
        scope: String,
    },
    /// A manifest is unreadable.
    #[error(transparent)]
    BadManifest(ManifestError),
}

/// A run folder, complete or not.
#[derive(Debug, Clone)]
pub struct RunListing {
    /// Run id.
    pub id: RunId,
    /// Its folder.
    pub path: PathBuf,
    /// Its manifest; `Err` when missing (incomplete run) or unreadable.
    pub manifest: Result<Manifest, ManifestError>,
    /// The process still writing it (no manifest yet, its writer alive).
    pub in_progress: Option<Owner>,
}

/// Result of checking one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileCheck {
    /// Run id.
    pub run: String,
    /// Container id.
    pub container: String,
    /// File name.
    pub file: String,
    /// `None` if good, else what is wrong.
    pub problem: Option<String>,
    /// The run is still being written (not checked, not damaged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
}

/// A tar target folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The target at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The target folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the target folder if needed and checks that it is writable.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let err = |source| StoreError::Target {
            path: self.root.clone(),
            source,
        };
        // The same words as a dry run for a file in the way.
        self.check_usable()?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(err)?;
        tempfile::Builder::new()
            .prefix(crate::sys::atomic::TEMP_PREFIX)
            .tempfile_in(&self.root)
            .map(drop)
            .map_err(err)
    }

    /// Checks, writing nothing, that the target folder is (or can be made)
    /// a writable folder: what `--dry-run` checks.
    pub fn check_usable(&self) -> Result<(), StoreError> {
        crate::sys::fs::check_dir_usable(&self.root).map_err(|source| StoreError::Target {
            path: self.root.clone(),
            source,
        })
    }

    /// Creates the folder of a new run started at `at` on `host`, with the
    /// record of the process writing it (`owner(run)`).
    pub fn create_run(
        &self,
        at: DateTime<Utc>,
        host: &str,
        owner: impl Fn(&RunId) -> Owner,
    ) -> Result<(RunId, PathBuf), StoreError> {
        for seq in 1..100 {
            let id = RunId::new(at, host, seq);
            let path = self.root.join(id.as_str());
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let fail = |source| StoreError::Target {
                        path: path.clone(),
                        source,
                    };
                    if let Err(e) =
                        crate::sys::atomic::write(&path.join(RUN_OWNER_NAME), &owner(&id).to_json())
                    {
                        let _ = std::fs::remove_dir(&path);
                        return Err(fail(e));
                    }
                    crate::sys::fs::fsync_dir(&self.root).map_err(|source| StoreError::Target {
                        path: self.root.clone(),
                        source,
                    })?;
                    return Ok((id, path));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(StoreError::Target { path, source }),
            }
        }
        Err(StoreError::Target {
            path: self.root.clone(),
            source: io::Error::other("too many runs started in the same second"),
        })
    }

    /// All runs, oldest first.
    pub fn list(&self) -> Result<Vec<RunListing>, StoreError> {
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Target {
                    path: self.root.clone(),
                    source,
                })
            }
        };
        let mut runs: Vec<RunListing> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| {
                let id = RunId::parse(e.file_name().to_str()?)?;
                let path = e.path();
                let mpath = path.join(MANIFEST_NAME);
                // Not `exists`: a symlink planted there is refused, not followed.
                let manifest = if std::fs::symlink_metadata(&mpath).is_ok() {
                    Manifest::read(&mpath).and_then(|m| {
                        if m.run == id.as_str() {
                            Ok(m)
                        } else {
                            Err(ManifestError::OtherRun {
                                path: mpath.clone(),
                                run: m.run,
                            })
                        }
                    })
                } else {
                    Err(ManifestError::Missing)
                };
                let in_progress = match &manifest {
                    Ok(_) => None,
                    Err(_) => crate::sys::fs::read_regular(
                        &path.join(RUN_OWNER_NAME),
                        crate::sys::owner::MAX_OWNER_RECORD,
                    )
                    .ok()
                    .and_then(|b| Owner::from_json(&b))
                    .filter(Owner::alive),
                };
                Some(RunListing {
                    id,
                    path,
                    manifest,
                    in_progress,
                })
            })
            .collect();
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(runs)
    }

    /// The run named `name`.
    pub fn run(&self, name: &str) -> Result<RunListing, StoreError> {
        self.list()?
            .into_iter()
            .find(|r| r.id.as_str() == name)
            .ok_or_else(|| StoreError::NoSuchRun(name.to_owned()))
    }

    /// The backup of container `id` to restore: the newest complete (`ok`)
    /// one, or the one in `run` if given (which may be partial; the caller
    /// warns of what is missing).
    pub fn find_backup(
        &self,
        id: &str,
        run: Option<&str>,
    ) -> Result<(RunListing, ContainerRecord), StoreError> {
        let candidates = match run {
            Some(name) => {
                let r = self.run(name)?;
                match &r.manifest {
                    Ok(_) => {}
                    Err(ManifestError::Missing) => {
                        return Err(StoreError::Incomplete(name.to_owned()))
                    }
                    Err(e) => return Err(StoreError::BadManifest(e.clone())),
                }
                vec![r]
            }
            None => self.list()?,
        };
        let named = run.is_some();
        let mut newest_partial: Option<String> = None;
        for r in candidates.into_iter().rev() {
            let Ok(m) = &r.manifest else { continue };
            let Some(c) = m.container(id) else { continue };
            match c.result {
                Outcome::Ok => return Ok((r.clone(), c.clone())),
                Outcome::Partial if named => return Ok((r.clone(), c.clone())),
                Outcome::Partial => {
                    newest_partial.get_or_insert_with(|| r.id.to_string());
                }
                Outcome::Failed => {}
            }
        }
        Err(StoreError::NoBackup {
            id: id.to_owned(),
            scope: match (run, newest_partial) {
                (Some(r), _) => format!("in run {r}"),
                (None, Some(p)) => format!(
                    "that is complete: only partial ones (the newest in run {p}); name it with --run {p} to restore it anyway"
                ),
                (None, None) => "in any complete run".into(),
            },
        })
    }

    /// Checks one file of a run: size, BLAKE3 and (for archives) that it
    /// decodes to the end.
    pub fn check_file(run_path: &Path, f: &FileRecord) -> Option<String> {
        let path = run_path.join(&f.name);
        match hash_file(&path) {
            Err(e) => return Some(format!("cannot read {}: {e}", path.display())),
            Ok((_, size)) if size != f.size => {
                return Some(format!("size is {size}, manifest says {}", f.size))
            }
            Ok((hash, _)) if hash != f.blake3 => {
                return Some(format!(
                    "BLAKE3 mismatch: is {hash}, manifest says {}",
                    f.blake3
                ))
            }
            Ok(_) => {}
        }
        if f.kind == FileKind::Archive {
            let r = crate::sys::fs::open_regular(&path).and_then(crate::archive::decode_to_end);
            if let Err(e) = r {
                return Some(format!("archive does not decode to the end: {e}"));
            }
        }
        None
    }

    /// Verifies every file of the given runs (all runs when empty).
    pub fn verify(&self, runs: &[String]) -> Result<Vec<FileCheck>, StoreError> {
        let all = self.list()?;
        let selected: Vec<RunListing> = if runs.is_empty() {
            all
        } else {
            runs.iter()
                .map(|name| {
                    all.iter()
                        .find(|r| r.id.as_str() == name)
                        .cloned()
                        .ok_or_else(|| StoreError::NoSuchRun(name.clone()))
                })
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for r in selected {
            let m = match &r.manifest {
                Ok(m) => m,
                Err(e) => {
                    let in_progress = r
                        .in_progress
                        .as_ref()
                        .map(|o| format!("in progress: being written by {}", o.describe()));
                    out.push(FileCheck {
                        run: r.id.to_string(),
                        container: String::new(),
                        file: MANIFEST_NAME.into(),
                        problem: in_progress.is_none().then(|| e.to_string()),
                        in_progress,
                    });
                    continue;
                }
            };
            for c in &m.containers {
                if c.result == Outcome::Failed {
                    out.push(FileCheck {
                        run: r.id.to_string(),
                        container: c.id.clone(),
                        file: String::new(),
                        problem: Some(format!(
                            "backup failed: {}",
                            c.error.as_deref().unwrap_or("no reason recorded")
                        )),
                        in_progress: None,
                    });
                    continue;
                }
                for f in &c.files {
                    out.push(FileCheck {
                        run: r.id.to_string(),
                        container: c.id.clone(),
                        file: f.name.clone(),
                        problem: Self::check_file(&r.path, f),
                        in_progress: None,
                    });
                }
            }
        }
        Ok(out)
    }
}
