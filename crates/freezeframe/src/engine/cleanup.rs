//! The undo registry: every step that must be undone (a freeze, a snapshot,
//! a run folder being written) is registered — and journaled, fsynced —
//! *before* it is done, and marked done after its undo. Whatever is still
//! registered when the run ends (normally, by error, by panic: the registry
//! unwinds on drop) is undone, newest first. Whatever the process could not
//! undo because it died is in the journal for the guardian and `recover`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::{Container, ProviderKind, RuntimeKind};
use crate::runtime::{Quiesced, Runtime, RuntimeError};
use crate::snapshot::{Hold, Snapshot, SnapshotError, SnapshotProvider};
use crate::state::{Journal, JournalError, Key, Step};
use crate::target::layout::{RunId, MANIFEST_NAME};

/// An undo step failed; it stays registered (and journaled) to be tried
/// again.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// The runtime could not resume the container.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The provider could not remove the snapshot.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A journaled folder is not named like a run folder: never removed.
    #[error("refusing to remove {}: not a run folder", .0.display())]
    NotARunFolder(PathBuf),
    /// A journaled folder is not named like a restore's staging folder:
    /// never removed.
    #[error("refusing to remove {}: not a restore staging folder", .0.display())]
    NotAStagingFolder(PathBuf),
    /// The incomplete run folder could not be removed.
    #[error("removing {}: {source}", path.display())]
    Remove {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The journal names a runtime this build or host does not have.
    #[error("no {runtime} runtime to thaw container {container}")]
    NoRuntime {
        /// The runtime.
        runtime: RuntimeKind,
        /// The container.
        container: String,
    },
    /// The journal names a snapshot provider this host does not have.
    #[error("no {provider:?} provider to remove snapshot {snapshot}")]
    NoProvider {
        /// The provider.
        provider: ProviderKind,
        /// The snapshot.
        snapshot: String,
    },
}

/// A step could not be registered: it must not be performed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The journal could not be written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The runtime gave no durable handle to resume from.
    #[error("no handle to resume from: {0}")]
    Handle(#[from] RuntimeError),
}

/// One thing to undo.
#[derive(Clone)]
pub enum Undo {
    /// Let this container run again (thaw, restore, resume, start).
    Resume(Arc<dyn Runtime>, Container, Quiesced),
    /// Remove this snapshot.
    RemoveSnapshot(Arc<dyn SnapshotProvider>, Snapshot),
    /// Remove this run folder unless its manifest was written.
    RunDir(PathBuf),
    /// Remove the archive workers' cgroup.
    ArchiveGroup(PathBuf),
    /// Remove a `restore --as` staging folder.
    CopyStaging(PathBuf),
    /// Remove a restored copy moved into place, unless registered.
    CopyPlaced(super::copy::Placed),
    /// Release what a provider holds while it reads changes.
    ReleaseHold(Arc<dyn SnapshotProvider>, Hold),
}

impl Undo {
    fn describe(&self) -> String {
        match self {
            Undo::Resume(_, c, q) => format!("resume container {} ({})", c.id, q.mode),
            Undo::RemoveSnapshot(_, s) => format!("remove snapshot {}", s.name),
            Undo::RunDir(p) => format!("remove incomplete run {}", p.display()),
            Undo::ArchiveGroup(p) => format!("remove archive cgroup {}", p.display()),
            Undo::CopyStaging(p) => format!("remove restore staging folder {}", p.display()),
            Undo::CopyPlaced(p) => format!("remove unregistered copy {}", p.path.display()),
            Undo::ReleaseHold(_, h) => format!("release the metadata snapshot of pool {}", h.pool),
        }
    }

    fn step(&self) -> Result<Step, RuntimeError> {
        Ok(match self {
            Undo::Resume(rt, c, q) => Step::Freeze {
                container: c.id.to_string(),
                runtime: rt.kind(),
                handle: rt.handle(c, q)?,
            },
            Undo::RemoveSnapshot(p, s) => Step::Snapshot {
                provider: p.kind(),
                snapshot: s.clone(),
            },
            Undo::RunDir(p) => Step::RunDir { path: p.clone() },
            Undo::ArchiveGroup(p) => Step::ArchiveGroup { path: p.clone() },
            Undo::CopyStaging(p) => Step::CopyStaging { path: p.clone() },
            Undo::CopyPlaced(p) => p.step(),
            Undo::ReleaseHold(p, h) => Step::Hold {
                provider: p.kind(),
                hold: h.clone(),
            },
        })
    }

    fn run(&self) -> Result<(), UndoError> {
        match self {
            Undo::Resume(rt, c, q) => Ok(rt.resume(c, q)?),
            Undo::RemoveSnapshot(p, s) => Ok(p.remove(s)?),
            Undo::RunDir(p) => remove_incomplete_run(p),
            Undo::ArchiveGroup(p) => {
                crate::sys::throttle::remove(p).map_err(|source| UndoError::Remove {
                    path: p.clone(),
                    source,
                })
            }
            Undo::CopyStaging(p) => super::copy::remove_staging(p).map(|_| ()),
            Undo::CopyPlaced(p) => p.remove().map(|_| ()),
            Undo::ReleaseHold(p, h) => Ok(p.release_hold(h)?),
        }
    }
}

/// Removes a run folder that has no manifest. Refuses anything that is not
/// named like a run folder.
pub fn remove_incomplete_run(dir: &Path) -> Result<(), UndoError> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if RunId::parse(name).is_none() {
        return Err(UndoError::NotARunFolder(dir.to_owned()));
    }
    if dir.join(MANIFEST_NAME).exists() || !dir.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(dir).map_err(|source| UndoError::Remove {
        path: dir.to_owned(),
        source,
    })
}

/// Handle of a registered undo step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(u64);

struct Entry {
    token: Token,
    undo: Undo,
    key: Option<Key>,
}

/// The registry. Unwinds on drop.
#[derive(Default)]
pub struct Cleanup {
    journal: Option<Arc<Journal>>,
    items: Mutex<(u64, Vec<Entry>)>,
}

impl Cleanup {
    /// A registry that journals to `journal` (none: in-process only).
    pub fn new(journal: Option<Arc<Journal>>) -> Self {
        Self {
            journal,
            items: Mutex::default(),
        }
    }

    /// Registers (and journals, with one fsync) `undos` before the steps
    /// they undo are performed.
    pub fn register_all(&self, undos: Vec<Undo>) -> Result<Vec<Token>, RegisterError> {
        let keys: Vec<Option<Key>> = match &self.journal {
            Some(j) => {
                let steps: Vec<Step> = undos
                    .iter()
                    .map(|u| u.step())
                    .collect::<Result<_, RuntimeError>>()?;
                j.intents(&steps)?.into_iter().map(Some).collect()
            }
            None => vec![None; undos.len()],
        };
        let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let mut tokens = Vec::new();
        for (undo, key) in undos.into_iter().zip(keys) {
            g.0 += 1;
            let token = Token(g.0);
            g.1.push(Entry { token, undo, key });
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// Forgets a step that needs no undo any more.
    pub fn done(&self, token: Token) {
        self.done_all(&[token]);
    }

    /// Forgets steps that need no undo any more, journaling them with one
    /// fsync.
    pub fn done_all(&self, tokens: &[Token]) {
        let keys: Vec<Key> = {
            let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
            let mut keys = Vec::new();
            for t in tokens {
                if let Some(i) = g.1.iter().position(|e| e.token == *t) {
                    if let Some(k) = g.1.remove(i).key {
                        keys.push(k);
                    }
                }
            }
            keys
        };
        if let (false, Some(j)) = (keys.is_empty(), &self.journal) {
            if let Err(e) = j.done_all(&keys) {
                // Harmless: recovery would undo it again, and undo is idempotent.
                tracing::warn!(error = %e, "could not journal a done step");
            }
        }
    }

    /// Runs the undo of `token` now without journaling it (the caller
    /// journals a batch with [`Cleanup::done_all`] afterwards: until then,
    /// recovery would only undo it once more, which is harmless).
    pub fn undo_unjournaled(&self, token: Token) -> Result<(), UndoError> {
        let undo = {
            let g = self.items.lock().unwrap_or_else(|p| p.into_inner());
            g.1.iter()
                .find(|e| e.token == token)
                .map(|e| e.undo.clone())
        };
        match undo {
            None => Ok(()),
            Some(u) => u.run(),
        }
    }

    /// Runs the undo of `token` now and forgets it if it succeeded.
    pub fn undo_now(&self, token: Token) -> Result<(), UndoError> {
        self.undo_unjournaled(token)?;
        self.done(token);
        Ok(())
    }

    /// Undoes everything still registered, newest first. Returns the failures.
    pub fn unwind(&self) -> Vec<String> {
        let tokens: Vec<(Token, String)> = {
            let g = self.items.lock().unwrap_or_else(|p| p.into_inner());
            g.1.iter()
                .rev()
                .map(|e| (e.token, e.undo.describe()))
                .collect()
        };
        let mut failures = Vec::new();
        for (t, what) in tokens {
            tracing::warn!(step = %what, "cleaning up");
            if let Err(e) = self.undo_now(t) {
                tracing::error!(step = %what, error = %e, "cleanup failed");
                failures.push(format!("{what}: {e}"));
            }
        }
        failures
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.unwind();
    }
}
