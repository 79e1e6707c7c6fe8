//! The archive pool's side of a run: each worker takes a container and its
//! snapshot, archives it into a temporary file (or backs it up into the
//! repository), checks the snapshot is still valid, commits the archive
//! (or discards the repository snapshot), and keeps the memory dump and
//! config beside it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};

use super::lifecycle::{ms, Observer, Phase};
use super::toolbox::RepositoryWriter;
use super::watch::Watch;
use crate::archive::{create_archive, ArchiveOptions, TreeReport};
use crate::config::Container;
use crate::repo::{ContainerBackup, RepoBackupRecord};
use crate::snapshot::Snapshot;
use crate::sys::atomic::{self, AtomicFile};
use crate::sys::{Cancel, Clock, Faults};
use crate::target::layout::{archive_name, config_name, dump_name};
use crate::target::manifest::{FileKind, FileRecord};

/// One container to archive from one snapshot.
pub(super) struct Job {
    pub ct: Container,
    pub snap: Snapshot,
    pub rel: PathBuf,
    /// A memory dump to keep in the run.
    pub dump: Option<PathBuf>,
    /// Its freeze window, if it was frozen (recorded with a repository snapshot).
    pub freeze_ms: Option<f64>,
}

/// What archiving one container produced.
pub(super) struct Archived {
    pub files: Vec<FileRecord>,
    pub tree: TreeReport,
    pub repository: Option<RepoBackupRecord>,
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
    pub opts: ArchiveOptions,
    pub observer: &'a dyn Observer,
    pub clock: &'a dyn Clock,
    pub cancel: &'a Cancel,
    pub faults: &'a Faults,
    pub mid_archive_hit: AtomicBool,
    pub watch: &'a Watch,
    /// The repository, for a `repository` target.
    pub repository: Option<&'a dyn RepositoryWriter>,
    /// Run id and host (recorded in repository snapshots).
    pub run: &'a str,
    pub host: &'a str,
}

/// Runs archive jobs until the queue closes.
pub(super) fn worker(jobs: Receiver<Job>, done: Sender<JobDone>, ctx: &WorkerCtx<'_>) {
    for job in jobs.iter() {
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

/// Archives one container from its snapshot; the archive is committed only
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
    if let Some(repo) = ctx.repository {
        return backup_one(repo, job, &src, ctx);
    }
    let aname = archive_name(&job.ct.id, ctx.opts.compression);
    let dest = ctx.dir.join(&aname);
    let mut af =
        AtomicFile::create(&dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    let progress = |n: u64| {
        if !ctx.mid_archive_hit.swap(true, Ordering::SeqCst) {
            ctx.faults.hit("mid-archive", ctx.cancel);
        }
        ctx.observer.bytes(n);
        ctx.cancel.check()
    };
    let (_, written) = create_archive(&src, af.file(), &ctx.opts, &progress)
        .map_err(|e| format!("archiving {} into {}: {e}", src.display(), dest.display()))?;
    ctx.cancel
        .check()
        .map_err(|e| format!("not archived: {e}"))?;
    // Checked after reading everything: an overflow at any time before
    // this point makes the snapshot (and so the archive) invalid.
    if let Some(why) = ctx.watch.check(&job.snap.name) {
        return Err(format!(
            "snapshot {} became invalid while archiving: {why}; the archive was discarded",
            job.snap.name
        ));
    }
    af.commit()
        .map_err(|e| format!("writing {}: {e}", dest.display()))?;
    let mut files = vec![FileRecord {
        name: aname,
        kind: FileKind::Archive,
        size: written.size,
        blake3: written.blake3,
    }];
    if let Some(dump) = &job.dump {
        let dname = dump_name(&job.ct.id);
        let ddest = ctx.dir.join(&dname);
        let mut af =
            AtomicFile::create(&ddest).map_err(|e| format!("creating {}: {e}", ddest.display()))?;
        let mut src = std::fs::File::open(dump)
            .map_err(|e| format!("reading memory dump {}: {e}", dump.display()))?;
        let mut h = crate::archive::hashing::HashingWriter::new(af.file());
        std::io::copy(&mut src, &mut h)
            .map_err(|e| format!("copying memory dump {}: {e}", dump.display()))?;
        let (_, blake3, size) = h.finish();
        af.commit()
            .map_err(|e| format!("writing {}: {e}", ddest.display()))?;
        // The run keeps the dump; the runtime's copy is ours to remove.
        let _ = std::fs::remove_file(dump);
        files.push(FileRecord {
            name: dname,
            kind: FileKind::Dump,
            size,
            blake3,
        });
    }
    if let Some(cfg) = &job.ct.config {
        let data = std::fs::read(cfg)
            .map_err(|e| format!("reading config file {}: {e}", cfg.display()))?;
        let cname = config_name(&job.ct.id);
        let cdest = ctx.dir.join(&cname);
        atomic::write(&cdest, &data).map_err(|e| format!("writing {}: {e}", cdest.display()))?;
        files.push(FileRecord {
            name: cname,
            kind: FileKind::Config,
            size: data.len() as u64,
            blake3: blake3::hash(&data).to_hex().to_string(),
        });
    }
    Ok(Archived {
        files,
        tree: written.tree,
        repository: None,
    })
}

/// Backs one container up into the repository; the snapshot it wrote is
/// discarded if the source snapshot turned invalid or the run was stopped.
fn backup_one(
    repo: &dyn RepositoryWriter,
    job: &Job,
    src: &Path,
    ctx: &WorkerCtx<'_>,
) -> Result<Archived, String> {
    if !ctx.mid_archive_hit.swap(true, Ordering::SeqCst) {
        ctx.faults.hit("mid-archive", ctx.cancel);
    }
    let id = job.ct.id.to_string();
    let req = ContainerBackup {
        id: &id,
        run: ctx.run,
        host: ctx.host,
        source: src,
        config: job.ct.config.as_deref(),
        dump: job.dump.as_deref(),
        freeze_ms: job.freeze_ms,
    };
    let rec = repo.backup(&req, ctx.cancel)?;
    ctx.observer.bytes(rec.bytes_read);
    let discard = |why: String| -> String {
        match repo.discard(&rec.snapshot) {
            Ok(()) => format!("{why}; repository snapshot {} was removed", rec.snapshot),
            Err(e) => format!(
                "{why}; removing repository snapshot {} failed too: {e} (run `freezeframe prune` or remove it with restic)",
                rec.snapshot
            ),
        }
    };
    if let Err(e) = ctx.cancel.check() {
        return Err(discard(format!("not backed up: {e}")));
    }
    if let Some(why) = ctx.watch.check(&job.snap.name) {
        return Err(discard(format!(
            "snapshot {} became invalid while it was read: {why}",
            job.snap.name
        )));
    }
    if let Some(dump) = &job.dump {
        // The repository keeps the dump; the runtime's copy is ours to remove.
        let _ = std::fs::remove_file(dump);
    }
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
    };
    Ok(Archived {
        files: Vec::new(),
        tree,
        repository: Some(rec),
    })
}
