//! The repository behind the target face: run reports in a folder per run,
//! backups as restic snapshots, one per container per run.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::{Repo, RepoError, Selection, SnapshotInfo};
use crate::archive::ArchiveOptions;
use crate::config::RepositoryConfig;
use crate::sys::{Cancel, CommandRunner, Faults};
use crate::target::browse::{BrowsePath, LsEntry};
use crate::target::report::{size, Report};
use crate::target::restore::{RestoreRequest, RestoreResult};
use crate::target::store::Store;
use crate::target::view::BackupView;
use crate::target::{
    Backup, BackupWriter, PruneRequest, Target, TargetError, VerifyRequest, Which,
};

/// A repository target: the repository, open, and its run reports.
pub struct RepoTarget {
    store: Store,
    repo: Arc<Repo>,
    /// The long-lived reader views share, opened by the first view.
    reader: std::sync::Mutex<Option<Arc<super::rustic::view::Reader>>>,
}

impl std::fmt::Debug for RepoTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoTarget")
            .field("location", &self.repo.location())
            .finish_non_exhaustive()
    }
}

impl RepoTarget {
    /// Opens the repository of `cfg` (its password read now); run reports
    /// go to `path`.
    pub fn open(
        path: &Path,
        cfg: &RepositoryConfig,
        runner: &dyn CommandRunner,
    ) -> Result<Self, RepoError> {
        Ok(Self {
            store: Store::new(path),
            repo: Arc::new(Repo::open(cfg, runner)?),
            reader: std::sync::Mutex::new(None),
        })
    }

    fn snapshot(&self, b: &Backup) -> Result<SnapshotInfo, TargetError> {
        Ok(self.repo.find(&Selection {
            container: &b.container,
            which: Some(&b.id),
        })?)
    }
}

fn backup_of(s: &SnapshotInfo) -> Backup {
    Backup {
        container: s.container.clone(),
        id: s.id.clone(),
        run: s.run.clone(),
        time: s.time.clone(),
        host: s.host.clone(),
        partial: s.partial,
        missing: s.missing.clone(),
    }
}

impl Target for RepoTarget {
    fn kind(&self) -> &'static str {
        "repository"
    }

    fn describe(&self) -> String {
        format!("repository {}", self.repo.location())
    }

    fn runs(&self) -> &Store {
        &self.store
    }

    fn writer(&self, opts: ArchiveOptions) -> Arc<dyn BackupWriter> {
        self.repo.set_bwlimit(opts.bwlimit);
        self.repo.preload_index();
        Arc::new(super::writer::RepoWriter {
            repo: self.repo.clone(),
        })
    }

    fn recover(&self) -> Result<Vec<String>, TargetError> {
        let n = self.repo.remove_stale_locks()?;
        Ok(if n == 0 {
            Vec::new()
        } else {
            vec![format!(
                "removed {n} lock file(s) of this host's killed processes from repository {}",
                self.repo.location()
            )]
        })
    }

    fn list(&self) -> Result<Box<dyn Report>, TargetError> {
        Ok(Box::new(Snapshots {
            location: self.repo.location().to_owned(),
            snaps: self.repo.snapshots(None)?,
        }))
    }

    fn find(&self, which: &Which<'_>) -> Result<Backup, TargetError> {
        let s = self.repo.find(&Selection {
            container: which.container,
            which: which.run,
        })?;
        Ok(backup_of(&s))
    }

    fn backups(&self) -> Result<Vec<Backup>, TargetError> {
        Ok(self.repo.snapshots(None)?.iter().map(backup_of).collect())
    }

    fn view(&self, backup: &Backup) -> Result<Arc<dyn BackupView>, TargetError> {
        let reader = {
            let mut r = self.reader.lock().unwrap_or_else(|p| p.into_inner());
            match &*r {
                Some(reader) => reader.clone(),
                None => r.insert(self.repo.reader()?).clone(),
            }
        };
        Ok(Arc::new(self.repo.view(&reader, &self.snapshot(backup)?)?))
    }

    fn verify(&self, req: &VerifyRequest) -> Result<Box<dyn Report>, TargetError> {
        if !req.runs.is_empty() {
            return Err(TargetError::Usage(
                "a repository is checked as a whole: drop the run names (use --read-data-subset to read part of the data)".into(),
            ));
        }
        let report = self
            .repo
            .check(req.read_data, req.read_data_subset.as_deref())?;
        let read = match (&req.read_data_subset, req.read_data) {
            (Some(s), _) => format!(", data subset {s} read"),
            (None, true) => ", all data read".into(),
            (None, false) => String::new(),
        };
        Ok(Box::new(Check {
            location: self.repo.location().to_owned(),
            report,
            read,
        }))
    }

    fn restore(
        &self,
        req: &RestoreRequest,
        faults: &Faults,
        cancel: &Cancel,
    ) -> Result<RestoreResult, TargetError> {
        Ok(super::restore::restore(&self.repo, req, faults, cancel)?)
    }

    fn ls(&self, backup: &Backup, path: Option<&BrowsePath>) -> Result<Vec<LsEntry>, TargetError> {
        Ok(self.repo.ls(&self.snapshot(backup)?, path)?)
    }

    fn cat(
        &self,
        backup: &Backup,
        path: &BrowsePath,
        out: &mut dyn Write,
    ) -> Result<u64, TargetError> {
        Ok(self.repo.cat(&self.snapshot(backup)?, path, out)?)
    }

    fn prune(&self, req: &PruneRequest, _faults: &Faults) -> Result<Box<dyn Report>, TargetError> {
        Ok(Box::new(self.repo.prune(req)?))
    }
}

/// `list` of a repository: its freezeframe snapshots, oldest first.
struct Snapshots {
    location: String,
    snaps: Vec<SnapshotInfo>,
}

impl Report for Snapshots {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.snaps).unwrap_or_default()
    }

    fn to_text(&self) -> String {
        if self.snaps.is_empty() {
            return format!("no snapshots in {}\n", self.location);
        }
        let mut s = format!(
            "{:<10} {:<20} {:<14} {:<12} {:<40} {:>8} {:>10} {:>10}\n",
            "ID", "TIME", "HOST", "CONTAINER", "RUN", "FILES", "SIZE", "ADDED"
        );
        for x in &self.snaps {
            s.push_str(&format!(
                "{:<10} {:<20} {:<14} {:<12} {:<40} {:>8} {:>10} {:>10}{}\n",
                &x.id[..8.min(x.id.len())],
                x.time,
                x.host,
                x.container,
                x.run.as_deref().unwrap_or("-"),
                x.files,
                size(x.bytes),
                size(x.bytes_added),
                if x.partial { "  PARTIAL" } else { "" }
            ));
        }
        s
    }
}

/// `verify` of a repository: restic-style check.
struct Check {
    location: String,
    report: super::CheckReport,
    read: String,
}

impl Report for Check {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.report).unwrap_or_default()
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        for w in &self.report.warnings {
            s.push_str(&format!("warning: {w}\n"));
        }
        for e in &self.report.errors {
            s.push_str(&format!("ERROR: {e}\n"));
        }
        s.push_str(&format!(
            "repository {}: {} error(s), {} warning(s){}\n",
            self.location,
            self.report.errors.len(),
            self.report.warnings.len(),
            self.read
        ));
        s
    }

    fn damaged(&self) -> bool {
        !self.report.errors.is_empty()
    }
}
