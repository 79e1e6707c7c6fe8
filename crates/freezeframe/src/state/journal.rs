//! The journal: before a step that must be undone (a freeze, a snapshot, a
//! run folder being written) an *intent* record is appended and fsynced;
//! after the undo a *done* record follows. Whatever has an intent but no
//! done belongs to a run that did not finish it: the guardian and
//! `freezeframe recover` undo it. One JSON object per line; a torn last line
//! (the writer was killed mid-write) is ignored.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::{ProviderKind, RuntimeKind};
use crate::snapshot::Snapshot;
use crate::sys::process;

/// File name of the journal inside the state dir.
pub const JOURNAL_NAME: &str = "journal";

/// One undoable step, with everything needed to undo it without the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// A container frozen by `runtime`; `handle` is the runtime's own
    /// reference (for cgroups: `v2:<dir>` or `v1:<dir>`).
    Freeze {
        /// Container id.
        container: String,
        /// Runtime.
        runtime: RuntimeKind,
        /// How the runtime finds it again.
        handle: String,
    },
    /// A snapshot made by `provider`.
    Snapshot {
        /// Provider.
        provider: ProviderKind,
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// A run folder being written; without a manifest it is removed.
    RunDir {
        /// The folder.
        path: PathBuf,
    },
    /// The cgroup of the archive workers (`[throttle]`), removed after.
    ArchiveGroup {
        /// The cgroup folder.
        path: PathBuf,
    },
    /// The folder a `restore --as` fills before the copy appears.
    CopyStaging {
        /// The folder.
        path: PathBuf,
    },
    /// A restored copy moved into place whose registering config is not
    /// yet written (OpenVZ: the private area before `<CTID>.conf`).
    CopyPlaced {
        /// Where it was moved.
        path: PathBuf,
        /// Its device and inode: only that folder is removed.
        dev: u64,
        /// Its inode.
        ino: u64,
        /// Once this file exists the copy is registered and stays.
        registered_by: PathBuf,
    },
    /// Something a provider holds in the kernel while it reads changes
    /// (LVM-thin: the pool's metadata snapshot).
    Hold {
        /// Provider.
        provider: ProviderKind,
        /// What is held.
        hold: crate::snapshot::Hold,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Freeze { container, .. } => write!(f, "freeze of container {container}"),
            Step::Snapshot { snapshot, .. } => write!(f, "snapshot {}", snapshot.name),
            Step::RunDir { path } => write!(f, "run folder {}", path.display()),
            Step::ArchiveGroup { path } => write!(f, "archive cgroup {}", path.display()),
            Step::CopyStaging { path } => write!(f, "restore staging folder {}", path.display()),
            Step::CopyPlaced { path, .. } => {
                write!(f, "unregistered restored copy {}", path.display())
            }
            Step::Hold { hold, .. } => write!(f, "metadata snapshot of thin pool {}", hold.pool),
        }
    }
}

/// Identifies an intent record.
pub type Key = String;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Intent {
        key: Key,
        pid: u32,
        started: u64,
        step: Step,
    },
    Done {
        key: Key,
    },
}

/// An intent without its done record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its key.
    pub key: Key,
    /// PID of the process that wrote it.
    pub pid: u32,
    /// That process's start time (to tell it from a reused PID).
    pub started: u64,
    /// The step to undo.
    pub step: Step,
}

impl Pending {
    /// Whether the process that wrote this is still running.
    pub fn owner_alive(&self) -> bool {
        process::alive(self.pid, self.started)
    }
}

/// Writing or reading the journal failed.
#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source} (check state_dir in the config)")]
pub struct JournalError {
    /// The journal file.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
}

/// An open journal, appended to by one run.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    prefix: String,
    seq: AtomicU64,
    me: (u32, u64),
}

impl Journal {
    /// Opens (creating) the journal in `state_dir` for the run `run`.
    pub fn open(state_dir: &Path, run: &str) -> Result<Self, JournalError> {
        let path = state_dir.join(JOURNAL_NAME);
        let err = |source| JournalError {
            path: path.clone(),
            source,
        };
        super::ensure_dir(state_dir).map_err(err)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
            prefix: run.to_owned(),
            seq: AtomicU64::new(0),
            me: process::me(),
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, records: &[Record], sync: bool) -> Result<(), JournalError> {
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(|e| JournalError {
                path: self.path.clone(),
                source: e.into(),
            })?;
            buf.push(b'\n');
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let r = f
            .write_all(&buf)
            .and_then(|_| if sync { f.sync_data() } else { Ok(()) });
        r.map_err(|source| JournalError {
            path: self.path.clone(),
            source,
        })
    }

    /// Records the intent to perform `steps` (one write, one fsync) and
    /// returns their keys, in order.
    pub fn intents(&self, steps: &[Step]) -> Result<Vec<Key>, JournalError> {
        let keys: Vec<Key> = steps
            .iter()
            .map(|_| {
                format!(
                    "{}#{}",
                    self.prefix,
                    self.seq.fetch_add(1, Ordering::SeqCst)
                )
            })
            .collect();
        let records: Vec<Record> = steps
            .iter()
            .zip(&keys)
            .map(|(s, k)| Record::Intent {
                key: k.clone(),
                pid: self.me.0,
                started: self.me.1,
                step: s.clone(),
            })
            .collect();
        self.append(&records, true)?;
        Ok(keys)
    }

    /// Records that the step `key` was undone (or needs no undo).
    pub fn done(&self, key: &str) -> Result<(), JournalError> {
        self.done_all(&[key.to_owned()])
    }

    /// Records that the steps `keys` were undone: one write, one fsync.
    pub fn done_all(&self, keys: &[Key]) -> Result<(), JournalError> {
        let records: Vec<Record> = keys
            .iter()
            .map(|k| Record::Done { key: k.clone() })
            .collect();
        self.append(&records, true)
    }

    /// Empties the journal. Only for the lock holder, when nothing is pending.
    pub fn truncate(path: &Path) -> Result<(), JournalError> {
        match OpenOptions::new().write(true).open(path) {
            Ok(f) => f.set_len(0).and_then(|_| f.sync_all()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(|source| JournalError {
            path: path.to_owned(),
            source,
        })
    }

    /// Empties the journal in `state_dir` if nothing in it is pending; says
    /// whether it did. Only for the lock holder.
    pub fn clear_if_settled(state_dir: &Path) -> Result<bool, JournalError> {
        let path = state_dir.join(JOURNAL_NAME);
        if !Self::pending(&path)?.0.is_empty() {
            return Ok(false);
        }
        Self::truncate(&path)?;
        Ok(true)
    }

    /// The intents of the journal at `path` that have no done record, in the
    /// order they were written, plus warnings about unreadable lines.
    pub fn pending(path: &Path) -> Result<(Vec<Pending>, Vec<String>), JournalError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(source) => {
                return Err(JournalError {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        let mut out: Vec<Pending> = Vec::new();
        let mut warnings = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(Record::Intent {
                    key,
                    pid,
                    started,
                    step,
                }) => out.push(Pending {
                    key,
                    pid,
                    started,
                    step,
                }),
                Ok(Record::Done { key }) => out.retain(|p| p.key != key),
                // The last line may be torn by a kill mid-write.
                Err(_) if i + 1 == lines.len() => {}
                Err(e) => warnings.push(format!(
                    "{}: line {} unreadable, skipped: {e}",
                    path.display(),
                    i + 1
                )),
            }
        }
        Ok((out, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freeze(id: &str) -> Step {
        Step::Freeze {
            container: id.into(),
            runtime: RuntimeKind::Cgroup,
            handle: format!("v2:/x/{id}"),
        }
    }

    #[test]
    fn pending_is_intent_minus_done_and_torn_tail_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path(), "run1").unwrap();
        let keys = j
            .intents(&[
                freeze("a"),
                freeze("b"),
                Step::RunDir {
                    path: "/t/r".into(),
                },
            ])
            .unwrap();
        j.done(&keys[0]).unwrap();
        // A torn record from a writer killed mid-line.
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(br#"{"op":"done","key":"run1#"#).unwrap();
        let (p, w) = Journal::pending(j.path()).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            p.iter().map(|p| p.step.clone()).collect::<Vec<_>>(),
            vec![
                freeze("b"),
                Step::RunDir {
                    path: "/t/r".into()
                }
            ]
        );
        assert!(p[0].owner_alive(), "written by this process");
        Journal::truncate(j.path()).unwrap();
        assert!(Journal::pending(j.path()).unwrap().0.is_empty());
    }

    #[test]
    fn garbage_in_the_middle_is_reported_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(JOURNAL_NAME);
        std::fs::write(&p, "garbage\n{\"op\":\"done\",\"key\":\"x\"}\n").unwrap();
        let (pending, w) = Journal::pending(&p).unwrap();
        assert!(pending.is_empty());
        assert_eq!(w.len(), 1);
    }
}
