//! Writing one container into the repository: its snapshot is saved as it
//! is read; committed, it stays, and the runtime's copy of the memory dump
//! goes; discarded (the source snapshot turned invalid, the run was
//! stopped), it is deleted again.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Repo, RepoBackupRecord};
use crate::archive::TreeReport;
use crate::target::{BackupWriter, ContainerJob, PendingBackup, TargetError, Written};

/// Writes snapshots into `repo`.
pub(super) struct RepoWriter {
    pub(super) repo: Arc<Repo>,
}

impl BackupWriter for RepoWriter {
    fn write(&self, job: &ContainerJob<'_>) -> Result<Box<dyn PendingBackup>, TargetError> {
        let rec = self.repo.backup(job)?;
        let _ = (job.progress)(rec.bytes_read);
        Ok(Box::new(Pending {
            repo: self.repo.clone(),
            rec,
            dump: job.dump.map(Into::into),
        }))
    }

    fn hold(&self, held: bool) {
        self.repo.hold_writes(held);
    }
}

/// A snapshot saved, not yet vouched for.
struct Pending {
    repo: Arc<Repo>,
    rec: RepoBackupRecord,
    dump: Option<PathBuf>,
}

impl PendingBackup for Pending {
    fn commit(self: Box<Self>) -> Result<Written, TargetError> {
        if let Some(dump) = &self.dump {
            // The repository keeps the dump; the runtime's copy is ours.
            let _ = std::fs::remove_file(dump);
        }
        let rec = self.rec;
        let tree = TreeReport {
            entries: rec.files_new + rec.files_changed + rec.files_unchanged,
            bytes_read: rec.bytes_read,
            unreadable: rec.unreadable.len() as u64,
            skipped_sockets: Vec::new(),
            warnings: rec
                .unreadable
                .iter()
                .map(|u| format!("unreadable, not in the snapshot: {u}"))
                .collect(),
            excluded: rec.excluded.clone(),
        };
        Ok(Written {
            files: Vec::new(),
            tree,
            bytes_out: rec.bytes_added_packed,
            repository: Some(rec),
        })
    }

    fn discard(self: Box<Self>) -> Result<String, TargetError> {
        match self.repo.discard(&self.rec.snapshot) {
            Ok(()) => Ok(format!("repository snapshot {} was removed", self.rec.snapshot)),
            Err(e) => Err(TargetError::Usage(format!(
                "removing repository snapshot {} failed too: {e} (run `freezeframe prune` or remove it with restic)",
                self.rec.snapshot
            ))),
        }
    }
}
