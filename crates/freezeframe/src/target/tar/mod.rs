//! The tar target: one folder per run holding each container's archive
//! (plus its config and memory dump) and the manifest, written last. Plain
//! files anyone can read with GNU tar.

mod browse;
mod prune;
mod restore;
mod view;
mod writer;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::archive::ArchiveOptions;
use crate::sys::{Cancel, Faults};
use crate::target::browse::{BrowsePath, LsEntry};
use crate::target::manifest::{ContainerRecord, FileKind, Manifest, Outcome};
use crate::target::report::{size, Report};
use crate::target::restore::{RestoreRequest, RestoreResult};
use crate::target::store::{FileCheck, RunListing, Store, StoreError};
use crate::target::view::BackupView;
use crate::target::{
    Backup, BackupWriter, PruneRequest, Target, TargetError, VerifyRequest, Which,
};

/// A tar target at a folder.
#[derive(Debug, Clone)]
pub struct TarTarget {
    store: Store,
}

impl TarTarget {
    /// The tar target at `path`.
    pub fn new(path: &Path) -> Self {
        Self {
            store: Store::new(path),
        }
    }

    /// The archive of `backup` and its run folder, checked against the
    /// manifest before anything reads it.
    fn archive(&self, backup: &Backup) -> Result<std::fs::File, TargetError> {
        let (run, rec) = self
            .store
            .find_backup(&backup.container, Some(&backup.id))?;
        let f = rec
            .files
            .iter()
            .find(|f| f.kind == FileKind::Archive)
            .ok_or_else(|| {
                TargetError::NotFound(format!("run {} holds no archive of {}", run.id, rec.id))
            })?;
        if let Some(problem) = Store::check_file(&run.path, f) {
            return Err(TargetError::Io {
                what: format!("{}/{}", run.id, f.name),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, problem),
            });
        }
        let path = run.path.join(&f.name);
        crate::sys::fs::open_regular(&path).map_err(|source| TargetError::Io {
            what: format!("opening {}", path.display()),
            source,
        })
    }

    fn decoded(&self, backup: &Backup) -> Result<Box<dyn std::io::Read>, TargetError> {
        crate::archive::compress::decoder(self.archive(backup)?).map_err(|source| TargetError::Io {
            what: "reading the archive".into(),
            source,
        })
    }
}

fn backup_of(run: &RunListing, m: &Manifest, c: &ContainerRecord) -> Backup {
    Backup {
        container: c.id.clone(),
        id: run.id.to_string(),
        run: Some(run.id.to_string()),
        time: m.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        host: m.host.clone(),
        partial: c.result == Outcome::Partial,
        missing: if c.result == Outcome::Partial {
            c.tree.warnings.clone()
        } else {
            Vec::new()
        },
    }
}

impl Target for TarTarget {
    fn kind(&self) -> &'static str {
        "tar"
    }

    fn describe(&self) -> String {
        format!("tar target {}", self.store.root().display())
    }

    fn runs(&self) -> &Store {
        &self.store
    }

    fn writer(&self, opts: ArchiveOptions) -> Arc<dyn BackupWriter> {
        writer::TarWriter::new(opts)
    }

    fn list(&self) -> Result<Box<dyn Report>, TargetError> {
        Ok(Box::new(RunList {
            root: self.store.root().display().to_string(),
            runs: self.store.list()?,
        }))
    }

    fn find(&self, which: &Which<'_>) -> Result<Backup, TargetError> {
        let (run, rec) = self.store.find_backup(which.container, which.run)?;
        let m = run
            .manifest
            .as_ref()
            .map_err(|e| StoreError::BadManifest(e.clone()))?;
        Ok(backup_of(&run, m, &rec))
    }

    fn backups(&self) -> Result<Vec<Backup>, TargetError> {
        let mut out = Vec::new();
        for run in self.store.list()? {
            let Ok(m) = &run.manifest else { continue };
            for c in &m.containers {
                if c.result != Outcome::Failed {
                    out.push(backup_of(&run, m, c));
                }
            }
        }
        Ok(out)
    }

    fn view(&self, backup: &Backup) -> Result<Arc<dyn BackupView>, TargetError> {
        Ok(Arc::new(view::TarView::open(self.archive(backup)?)?))
    }

    fn verify(&self, req: &VerifyRequest) -> Result<Box<dyn Report>, TargetError> {
        // A tar target's verify always reads everything, which covers any
        // subset asked for (so one verify unit serves both kinds).
        if req.read_data || req.read_data_subset.is_some() {
            tracing::info!("a tar target's verify reads every archive whole");
        }
        Ok(Box::new(Checks(self.store.verify(&req.runs)?)))
    }

    fn restore(
        &self,
        req: &RestoreRequest,
        faults: &Faults,
        cancel: &Cancel,
    ) -> Result<RestoreResult, TargetError> {
        restore::restore(&self.store, req, faults, cancel)
    }

    fn ls(&self, backup: &Backup, path: Option<&BrowsePath>) -> Result<Vec<LsEntry>, TargetError> {
        let entries = browse::ls(self.decoded(backup)?, path)?;
        match path {
            Some(p) if !p.is_root() && entries.is_empty() => {
                Err(TargetError::NotFound(format!("no {p} in this backup")))
            }
            _ => Ok(entries),
        }
    }

    fn cat(
        &self,
        backup: &Backup,
        path: &BrowsePath,
        out: &mut dyn Write,
    ) -> Result<u64, TargetError> {
        match browse::cat(self.decoded(backup)?, path, out)? {
            browse::Found::Written(n) => Ok(n),
            // A hardlink: its content is under its first name.
            browse::Found::LinkTo(first) => {
                let first = BrowsePath::from_stored(&first);
                match browse::cat(self.decoded(backup)?, &first, out)? {
                    browse::Found::Written(n) => Ok(n),
                    browse::Found::LinkTo(_) => Err(TargetError::Usage(format!(
                        "{path} is a hardlink to a hardlink; the archive is damaged"
                    ))),
                }
            }
        }
    }

    fn prune(&self, req: &PruneRequest, faults: &Faults) -> Result<Box<dyn Report>, TargetError> {
        Ok(Box::new(prune::prune(&self.store, req, faults)?))
    }
}

/// `list` of a tar target: its runs, oldest first.
struct RunList {
    root: String,
    runs: Vec<RunListing>,
}

/// A run's result judged by its containers and its warnings: run-level
/// warnings (a snapshot not removed) make a good run partial.
fn overall(m: &Manifest) -> Outcome {
    match m.containers_outcome() {
        Outcome::Ok if !m.warnings.is_empty() => Outcome::Partial,
        o => o,
    }
}

impl Report for RunList {
    fn to_json(&self) -> serde_json::Value {
        self.runs
            .iter()
            .map(|r| match (&r.manifest, &r.in_progress) {
                (Ok(m), _) => json!({
                    "run": r.id.as_str(),
                    "path": r.path,
                    "complete": true,
                    "result": overall(m),
                    "containers": m.containers.iter().map(|c| json!({
                        "id": c.id, "result": c.result, "freeze_ms": c.freeze_ms,
                        "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                    })).collect::<Vec<_>>(),
                }),
                (Err(_), Some(o)) => {
                    json!({"run": r.id.as_str(), "path": r.path, "complete": false,
                    "in_progress": true, "pid": o.pid})
                }
                (Err(e), None) => {
                    json!({"run": r.id.as_str(), "path": r.path, "complete": false, "problem": e.to_string()})
                }
            })
            .collect()
    }

    fn to_text(&self) -> String {
        if self.runs.is_empty() {
            return format!("no runs in {}\n", self.root);
        }
        let mut s = format!(
            "{:<40} {:<10} {:>10}  CONTAINERS\n",
            "RUN", "RESULT", "SIZE"
        );
        for r in &self.runs {
            let line = match (&r.manifest, &r.in_progress) {
                (Ok(m), _) => {
                    let total: u64 = m.containers.iter().map(|c| c.bytes_out).sum();
                    let cts: Vec<String> = m
                        .containers
                        .iter()
                        .map(|c| match c.freeze_ms {
                            Some(f) => format!("{}({}, {f:.0} ms)", c.id, c.result),
                            None => format!("{}({})", c.id, c.result),
                        })
                        .collect();
                    format!(
                        "{:<40} {:<10} {:>10}  {}",
                        r.id.as_str(),
                        overall(m).to_string(),
                        size(total),
                        cts.join(" ")
                    )
                }
                (Err(_), Some(o)) => format!(
                    "{:<40} {:<10} {:>10}  being written by PID {}",
                    r.id.as_str(),
                    "RUNNING",
                    "-",
                    o.pid
                ),
                (Err(e), None) => format!(
                    "{:<40} {:<10} {:>10}  {e}",
                    r.id.as_str(),
                    "INCOMPLETE",
                    "-"
                ),
            };
            s.push_str(&line);
            s.push('\n');
        }
        s
    }
}

/// `verify` of a tar target: one check per file.
struct Checks(Vec<FileCheck>);

impl Report for Checks {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or_default()
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        for c in &self.0 {
            let what = if c.file.is_empty() {
                c.container.clone()
            } else {
                format!("{}/{}", c.container, c.file)
            };
            s.push_str(&match (&c.problem, &c.in_progress) {
                (_, Some(note)) => format!("running {}: {note}; not checked\n", c.run),
                (None, None) => format!("ok      {}  {what}\n", c.run),
                (Some(p), None) => format!("BAD     {}  {what}: {p}\n", c.run),
            });
        }
        let bad = self.0.iter().filter(|c| c.problem.is_some()).count();
        let running = self.0.iter().filter(|c| c.in_progress.is_some()).count();
        s.push_str(&format!(
            "{} checked, {bad} bad{}\n",
            self.0.len() - running,
            if running > 0 {
                format!(", {running} run(s) in progress")
            } else {
                String::new()
            }
        ));
        s
    }

    fn damaged(&self) -> bool {
        self.0.iter().any(|c| c.problem.is_some())
    }
}
