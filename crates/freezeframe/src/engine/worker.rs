//! The archive pool's side of a run: each worker takes a container and its
//! snapshot, has the target's writer back it up, checks the snapshot is
//! still valid and the run not stopped, then commits the backup (or
//! discards it). Which kind of target it is, the worker does not know.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::bases::Incremental;
use super::lifecycle::ms;
use super::observer::{Observer, Phase};
use super::watch::Watch;
use crate::archive::TreeReport;
use crate::config::Container;
use crate::snapshot::Snapshot;
use crate::sys::{Cancel, Clock, Faults};
use crate::target::layout::RunId;
use crate::target::manifest::FileRecord;
use crate::target::{BackupWriter, ContainerJob, PendingBackup, RepoBackupRecord};

/// One container to archive from one snapshot.
pub(super) struct Job {
    pub ct: Container,
    pub snap: Snapshot,
    pub rel: PathBuf,
    /// A memory dump to keep in the run.
    pub dump: Option<PathBuf>,
    /// Its freeze window, if it was frozen (recorded with a repository snapshot).
    pub freeze_ms: Option<f64>,
    /// The snapshot's identity and the kernel's changes since its base.
    pub incremental: Option<Arc<Incremental>>,
}

/// What archiving one container produced.
pub(super) struct Archived {
    pub files: Vec<FileRecord>,
    pub tree: TreeReport,
    pub repository: Option<RepoBackupRecord>,
    pub bytes_out: u64,
}

/// What a worker reports back.
pub(super) struct JobDone {
    pub id: String,
    pub snap: String,
    pub archive_ms: f64,
    pub result: Result<Archived, String>,
}

/// Everything a worker needs, shared by the pool.
pub(super) struct WorkerCtx<'a> {
    pub dir: &'a Path,
    pub writer: Arc<dyn BackupWriter>,
    pub observer: &'a dyn Observer,
    pub clock: &'a dyn Clock,
    pub cancel: &'a Cancel,
    pub faults: &'a Faults,
    /// The archive phase's limits, applied by each worker thread.
    pub throttle: &'a super::throttle::WorkerThrottle<'a>,
    pub mid_archive_hit: AtomicBool,
    pub watch: &'a Watch,
    /// Run id and host.
    pub run: &'a RunId,
    pub host: &'a str,
}

/// Runs archive jobs until the queue closes.
pub(super) fn worker(jobs: Receiver<Job>, done: Sender<JobDone>, ctx: &WorkerCtx<'_>) {
    for job in jobs.iter() {
        ctx.throttle.enter();
        let id = job.ct.id.to_string();
        ctx.observer.phase(&id, &Phase::Archiving);
        let t0 = ctx.clock.mono();
        let result = archive_one(&job, ctx);
        let _ = done.send(JobDone {
            id,
            snap: job.snap.name.clone(),
            archive_ms: ms(ctx.clock.mono().saturating_sub(t0)),
            result,
        });
    }
}

/// Throws `pending` away, saying why and what became of it.
fn discarded(pending: Box<dyn PendingBackup>, why: String) -> String {
    match pending.discard() {
        Ok(what) => format!("{why}; {what}"),
        Err(e) => format!("{why}; {e}"),
    }
}

/// Backs one container up from its snapshot; the backup is committed only
/// if the snapshot is still healthy afterwards and the run was not stopped.
fn archive_one(job: &Job, ctx: &WorkerCtx<'_>) -> Result<Archived, String> {
    ctx.cancel
        .check()
        .map_err(|e| format!("not archived: {e}"))?;
    let src = job.snap.root.join(&job.rel);
    match std::fs::symlink_metadata(&src) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(format!(
                "private dir {} is not a directory in snapshot {} ({})",
                job.ct.private.display(),
                job.snap.name,
                src.display()
            ))
        }
    }
    let progress = |n: u64| {
        if !ctx.mid_archive_hit.swap(true, Ordering::SeqCst) {
            ctx.faults.hit("mid-archive", ctx.cancel);
        }
        ctx.observer.bytes(job.ct.id.as_str(), n);
        ctx.cancel.check()
    };
    let changes = job
        .incremental
        .as_ref()
        .and_then(|i| i.for_container(&job.rel));
    let excludes = crate::config::Excludes::new(&job.ct.exclude)
        .map_err(|e| format!("container {}: {e}", job.ct.id))?;
    if ctx.observer.wants_sizes() {
        if let Ok(total) = crate::archive::size::tree_size(&src, &excludes) {
            ctx.observer.sized(job.ct.id.as_str(), total);
        }
    }
    let cj = ContainerJob {
        excludes: &excludes,
        source_id: job.incremental.as_ref().and_then(|i| i.source_id.as_ref()),
        changes: changes.as_ref(),
        id: &job.ct.id,
        run: ctx.run,
        run_dir: ctx.dir,
        host: ctx.host,
        source: &src,
        config: job.ct.config.as_deref(),
        dump: job.dump.as_deref(),
        freeze_ms: job.freeze_ms,
        progress: &progress,
        cancel: ctx.cancel,
    };
    let pending = ctx
        .writer
        .write(&cj)
        .map_err(|e| format!("backing up {}: {e}", src.display()))?;
    if let Err(e) = ctx.cancel.check() {
        return Err(discarded(pending, format!("not backed up: {e}")));
    }
    // Checked after reading everything: an overflow at any time before
    // this point makes the snapshot (and so the backup) invalid.
    if let Some(why) = ctx.watch.check(&job.snap.name) {
        return Err(discarded(
            pending,
            format!(
                "snapshot {} became invalid while it was read: {why}",
                job.snap.name
            ),
        ));
    }
    let w = pending.commit().map_err(|e| e.to_string())?;
    Ok(Archived {
        files: w.files,
        tree: w.tree,
        repository: w.repository,
        bytes_out: w.bytes_out,
    })
}
