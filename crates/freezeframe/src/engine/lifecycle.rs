//! Executing a plan: for each freeze window journal → sync → freeze →
//! snapshot → thaw, then archive every container from its snapshot on a
//! bounded pool while the next window runs, release each snapshot once its
//! containers are done, and write the manifest last.
//!
//! Hooks never run inside a freeze window; a signal stops the run at the
//! next step boundary (or inside an archive) and unwinds everything. The
//! freeze window's steps live in `window.rs`, the archive workers in
//! `worker.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::cleanup::{Cleanup, Token, Undo};
use super::observer::{Observer, Phase};
use super::plan::Plan;
use super::watch::Watch;
use super::window::Rested;
use super::worker::{worker, Archived, Job, JobDone, WorkerCtx};
use super::Toolbox;
use crate::archive::{ArchiveOptions, TreeReport};
use crate::config::{Container, Strategy, Volume};
use crate::snapshot::Snapshot;
use crate::state::{Base, Bases, Journal};
use crate::sys::atomic;
use crate::sys::{Clock, HookEnv, HookError, HookPhase, Owner};
use crate::target::layout::MANIFEST_NAME;
use crate::target::manifest::{ContainerRecord, Manifest, Outcome, Timings, MANIFEST_VERSION};
use crate::target::{RunId, StoreError, Target};

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Run id.
    pub run: RunId,
    /// Its folder.
    pub dir: PathBuf,
    /// Its manifest (already written).
    pub manifest: Manifest,
}

/// The run could not be carried out at all (individual containers failing
/// is not an error: see the manifest).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The run folder could not be created.
    #[error(transparent)]
    Target(#[from] StoreError),
    /// The journal could not be written: nothing was frozen.
    #[error(transparent)]
    Journal(#[from] crate::state::JournalError),
    /// A step could not be registered: nothing was frozen.
    #[error(transparent)]
    Register(#[from] super::cleanup::RegisterError),
    /// The manifest could not be written: the run is incomplete.
    #[error("writing the manifest {path}: {source}; the run is incomplete")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A signal stopped the run; everything was undone and the incomplete
    /// run folder removed.
    #[error("interrupted by signal {signal}: containers thawed, snapshots removed, nothing of this run kept")]
    Interrupted {
        /// The signal number.
        signal: usize,
    },
}

pub(super) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

pub(super) fn unix_ns(t: SystemTime) -> i128 {
    crate::sys::time::Timestamp::from_system(t).as_ns()
}

fn new_record(ct: &Container, plan: &Plan) -> ContainerRecord {
    ContainerRecord {
        id: ct.id.to_string(),
        runtime: ct.runtime,
        volume: ct.volume.clone(),
        mode: None,
        note: None,
        result: Outcome::Failed,
        error: Some("not started".into()),
        freeze_ms: None,
        window: None,
        timings: Timings::default(),
        bytes_in: 0,
        bytes_out: 0,
        files: Vec::new(),
        tree: TreeReport::default(),
        repository: None,
        mounts: plan.mounts.get(ct.id.as_str()).cloned().unwrap_or_default(),
    }
}

/// A snapshot in use, and how many of its containers are still archived
/// from it.
struct Lease {
    remaining: usize,
    token: Token,
    /// Kept as the base under this key once all its containers are saved.
    keep: Option<(String, Base)>,
    /// A container archived from it failed: it is removed, not kept.
    failed: bool,
}

/// A run under way.
pub(super) struct Run<'a> {
    pub(super) plan: &'a Plan,
    pub(super) tools: &'a Toolbox,
    pub(super) observer: &'a dyn Observer,
    pub(super) cleanup: Cleanup,
    pub(super) run: RunId,
    dir: PathBuf,
    records: Vec<ContainerRecord>,
    pub(super) started: HashMap<String, Duration>,
    leases: HashMap<String, Lease>,
    pub(super) warnings: Vec<String>,
    /// Per-container end hooks, run outside freeze windows.
    queued_hooks: Vec<(HookPhase, String)>,
    /// Live snapshots, polled while they are read.
    pub(super) watch: &'a Watch,
    /// This run, as recorded beside each snapshot it makes.
    pub(super) owner: Owner,
    /// The base snapshots kept by earlier runs (and this one).
    pub(super) bases: Bases,
}

/// Carries out `plan`. Every freeze and snapshot is journaled and
/// registered for undo before it happens; whatever is left is undone before
/// this returns.
pub fn execute(
    plan: &Plan,
    tools: &Toolbox,
    target: &dyn Target,
    observer: &dyn Observer,
) -> Result<RunResult, ExecError> {
    let clock: &dyn Clock = tools.clock.as_ref();
    let started_wall = clock.wall();
    let state_dir = plan.state_dir.clone().unwrap_or_default();
    let (run_id, dir, cleanup, run_dir_token, group_token) =
        open_run(plan, tools, target, started_wall)?;
    tracing::info!(run = %run_id, dir = %dir.display(), "run started");
    let watch = Watch::default();
    let mut run = Run {
        plan,
        tools,
        observer,
        cleanup,
        run: run_id.clone(),
        dir: dir.clone(),
        records: plan
            .volumes
            .iter()
            .flat_map(|v| v.containers.iter().map(|c| new_record(c, plan)))
            .collect(),
        started: HashMap::new(),
        leases: HashMap::new(),
        warnings: Vec::new(),
        queued_hooks: Vec::new(),
        watch: &watch,
        owner: Owner::me(&state_dir, run_id.as_str()),
        bases: Bases::default(),
    };
    if plan.state_dir.is_some() {
        match Bases::load(&state_dir) {
            Ok(b) => run.bases = b,
            Err(e) => run.warnings.push(e.to_string()),
        }
    }
    match run.hook(HookPhase::JobStart, None, None) {
        Err(e) => {
            let ids: Vec<String> = run.records.iter().map(|r| r.id.clone()).collect();
            for id in ids {
                run.fail(&id, format!("not backed up: {e}"));
            }
        }
        Ok(()) => {
            let writer = target.writer(ArchiveOptions {
                compression: plan.compression,
                level: plan.level,
                threads: plan.threads_per_job,
                bwlimit: plan.throttle.bwlimit,
            });
            let throttle = super::throttle::WorkerThrottle::new(&plan.throttle, writer.clone());
            let ctx = WorkerCtx {
                dir: &dir,
                writer,
                throttle: &throttle,
                observer,
                clock,
                cancel: &tools.cancel,
                faults: &tools.faults,
                mid_archive_hit: AtomicBool::new(false),
                watch: &watch,
                run: &run_id,
                host: &tools.host,
            };
            run.archive_all(&ctx, &watch);
            run.warnings.extend(
                throttle
                    .warnings
                    .lock()
                    .map(|w| w.clone())
                    .unwrap_or_default(),
            );
            // Every archive worker is done: the group goes now, quietly.
            throttle.finish();
            if let Some(t) = group_token {
                if let Err(e) = run.cleanup.undo_now(t) {
                    run.warnings
                        .push(format!("the archive cgroup was not removed: {e}"));
                }
            }
        }
    }
    run.release_leases();
    run.flush_hooks();
    if let Some(signal) = tools.cancel.signal() {
        for f in run.cleanup.unwind() {
            tracing::error!("{f}");
        }
        run.end_hooks("interrupted");
        return Err(ExecError::Interrupted { signal });
    }
    tools.faults.hit("before-manifest", &tools.cancel);
    let (mut snapshots, snap_warnings) = watch.finish();
    for s in &mut snapshots {
        s.kept_as_base = run.bases.bases.values().any(|b| b.snapshot.name == s.name);
    }
    run.warnings.extend(snap_warnings);
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        tool: crate::VERSION.to_owned(),
        run: run_id.to_string(),
        host: tools.host.clone(),
        started_at: started_wall.into(),
        finished_at: clock.wall().into(),
        mode: plan.mode,
        strategy: plan.strategy,
        compression: plan.compression,
        level: plan.level,
        containers: run.records.clone(),
        snapshots,
        warnings: run.warnings.clone(),
    };
    write_manifest(&dir, &manifest)?;
    // The manifest exists: the run folder is complete, nothing to undo.
    run.cleanup.done(run_dir_token);
    let _ = std::fs::remove_file(dir.join(crate::target::layout::RUN_OWNER_NAME));
    let failures = run.cleanup.unwind();
    debug_assert!(failures.is_empty(), "{failures:?}");
    run.end_hooks(&manifest.containers_outcome().to_string());
    tracing::info!(run = %run_id, "run complete");
    Ok(RunResult {
        run: run_id,
        dir,
        manifest,
    })
}

/// Creates the run folder (with its owner record), opens the journal and
/// registers the undo of the folder (and of the archive cgroup, when
/// `[throttle]` limits I/O: its token second); on failure nothing of the
/// run is left.
fn open_run(
    plan: &Plan,
    tools: &Toolbox,
    target: &dyn Target,
    started: SystemTime,
) -> Result<(RunId, PathBuf, Cleanup, Token, Option<Token>), ExecError> {
    let state_dir = plan.state_dir.clone().unwrap_or_default();
    let (run_id, dir) =
        target
            .runs()
            .create_run(DateTime::<Utc>::from(started), &tools.host, |r| {
                Owner::me(&state_dir, r.as_str())
            })?;
    let journal = match &plan.state_dir {
        Some(d) => match Journal::open(d, run_id.as_str()) {
            Ok(j) => Some(Arc::new(j)),
            Err(e) => {
                let _ = super::cleanup::remove_incomplete_run(&dir);
                return Err(e.into());
            }
        },
        None => None,
    };
    let cleanup = Cleanup::new(journal);
    // The archive workers' cgroup (created by the first archive job) is
    // registered with the run folder: one fsync, before any freeze.
    let mut undos = vec![Undo::RunDir(dir.clone())];
    undos.extend(plan.throttle.group.clone().map(Undo::ArchiveGroup));
    match cleanup.register_all(undos) {
        Ok(t) => Ok((run_id, dir, cleanup, t[0], t.get(1).copied())),
        Err(e) => {
            let _ = super::cleanup::remove_incomplete_run(&dir);
            Err(e.into())
        }
    }
}

/// Writes the manifest last, atomically: from then on the run is complete.
fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), ExecError> {
    let mpath = dir.join(MANIFEST_NAME);
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| ExecError::Manifest {
        path: mpath.clone(),
        source: e.into(),
    })?;
    atomic::write(&mpath, &json).map_err(|source| ExecError::Manifest {
        path: mpath,
        source,
    })?;
    Ok(())
}

impl Run<'_> {
    /// The windows, volume by volume, feeding the worker pool; the watch
    /// thread polls the snapshots meanwhile. Returns when every job is done.
    fn archive_all(&mut self, ctx: &WorkerCtx<'_>, watch: &Watch) {
        let (job_tx, job_rx) = bounded::<Job>(self.plan.jobs);
        let (done_tx, done_rx) = unbounded::<JobDone>();
        std::thread::scope(|s| {
            // Stops the watching thread when this body ends, even by a
            // panic: the scope waits for every thread it spawned.
            let _stop_watch = watch.stop_on_drop();
            s.spawn(|| watch.run());
            for _ in 0..self.plan.jobs {
                let (rx, tx) = (job_rx.clone(), done_tx.clone());
                s.spawn(move || worker(rx, tx, ctx));
            }
            drop(done_tx);
            for vp in &self.plan.volumes {
                self.volume(&vp.volume, &vp.containers, &job_tx, &done_rx, ctx.throttle);
            }
            drop(job_tx);
            for d in done_rx.iter() {
                self.finish_job(d);
            }
        });
    }

    /// Leases left (a worker died): their snapshots are released.
    fn release_leases(&mut self) {
        let leases: Vec<(String, Token)> = self.leases.drain().map(|(s, l)| (s, l.token)).collect();
        for (snap, t) in leases {
            self.watch.remove(&snap);
            if let Err(e) = self.cleanup.undo_now(t) {
                self.warnings.push(e.to_string());
            }
        }
    }
}

impl Run<'_> {
    pub(super) fn hook(
        &self,
        phase: HookPhase,
        container: Option<&str>,
        result: Option<&str>,
    ) -> Result<(), HookError> {
        let env = HookEnv {
            container: container.map(str::to_owned),
            run: self.run.to_string(),
            run_dir: self.dir.display().to_string(),
            result: result.map(str::to_owned),
        };
        self.tools.hooks.run(phase, &env)
    }

    /// Runs a hook whose failure is only a warning.
    pub(super) fn hook_warn(
        &mut self,
        phase: HookPhase,
        container: Option<&str>,
        result: Option<&str>,
    ) {
        if let Err(e) = self.hook(phase, container, result) {
            tracing::warn!("{e}");
            self.warnings.push(e.to_string());
        }
    }

    fn flush_hooks(&mut self) {
        for (phase, id) in std::mem::take(&mut self.queued_hooks) {
            let result = self
                .records
                .iter()
                .find(|r| r.id == id)
                .map(|r| r.result.to_string());
            self.hook_warn(phase, Some(&id), result.as_deref());
        }
    }

    fn end_hooks(&mut self, result: &str) {
        let phase = if result == "ok" {
            HookPhase::JobEnd
        } else {
            HookPhase::JobFailed
        };
        self.hook_warn(phase, None, Some(result));
        self.hook_warn(HookPhase::Finally, None, Some(result));
    }

    pub(super) fn record(&mut self, id: &str) -> &mut ContainerRecord {
        let i = self
            .records
            .iter()
            .position(|r| r.id == id)
            .unwrap_or_else(|| {
                // Every planned container has a record; this is a logic error.
                panic!("no record for container {id}")
            });
        &mut self.records[i]
    }

    pub(super) fn fail(&mut self, id: &str, error: String) {
        tracing::error!(container = id, %error, "backup failed");
        let total = self.elapsed_for(id);
        let r = self.record(id);
        r.result = Outcome::Failed;
        r.error = Some(error);
        r.timings.total_ms = total;
        self.observer.phase(id, &Phase::Finished(Outcome::Failed));
        self.queued_hooks
            .push((HookPhase::BackupFailed, id.to_owned()));
    }

    fn elapsed_for(&self, id: &str) -> f64 {
        self.started
            .get(id)
            .map(|t0| ms(self.tools.clock.mono().saturating_sub(*t0)))
            .unwrap_or(0.0)
    }

    fn volume(
        &mut self,
        vol: &Volume,
        cts: &[Container],
        jobs: &Sender<Job>,
        done: &Receiver<JobDone>,
        throttle: &super::throttle::WorkerThrottle<'_>,
    ) {
        let Some(provider) = self.tools.provider(vol.provider).cloned() else {
            for c in cts {
                self.fail(
                    c.id.as_str(),
                    format!("no {:?} snapshot provider", vol.provider),
                );
            }
            return;
        };
        // Flush while everything still runs: less to write while frozen.
        if let Err(e) = provider.prepare(vol) {
            self.warnings.push(format!(
                "volume {}: sync before freeze failed: {e}",
                vol.name
            ));
        }
        // A stopped container needs no freeze and no snapshot: its files do
        // not change. It is archived from the live tree, and the manifest
        // says so.
        let (running, stopped): (Vec<Container>, Vec<Container>) =
            cts.iter().cloned().partition(|c| c.running);
        for ct in stopped {
            let id = ct.id.to_string();
            self.started.insert(id.clone(), self.tools.clock.mono());
            self.record(&id).note = Some("the container was stopped: archived from the live tree, without freezing or a snapshot".into());
            let rel = ct
                .private
                .strip_prefix(&vol.path)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let live = Snapshot {
                name: format!("live-{id}"),
                volume: vol.name.clone(),
                root: vol.path.clone(),
                device: None,
                origin: None,
            };
            if jobs
                .send(Job {
                    ct,
                    snap: live,
                    rel,
                    dump: None,
                    freeze_ms: None,
                    incremental: None,
                })
                .is_err()
            {
                self.fail(&id, "archive workers stopped".into());
            }
        }
        let windows: Vec<&[Container]> = match self.plan.strategy {
            Strategy::Group if running.is_empty() => vec![],
            Strategy::Group => vec![&running[..]],
            Strategy::Each => running.chunks(1).collect(),
        };
        for w in windows {
            if let Some(signal) = self.tools.cancel.signal() {
                for c in w {
                    self.fail(
                        c.id.as_str(),
                        format!("not backed up: interrupted by signal {signal}"),
                    );
                }
                continue;
            }
            // On cgroup v2 the archive phase's limits are lifted (and its
            // writes held) for the window: the guard's scope is the window's.
            let open = throttle.window();
            let made = self.window(vol, w, &provider);
            drop(open);
            if let Some((snap, token, ok)) = made {
                let key = Bases::key(
                    &vol.name,
                    (self.plan.strategy == Strategy::Each).then(|| w[0].id.as_str()),
                );
                let mut notes = Vec::new();
                let inc = self.incremental(vol, &snap, &key, &provider, &mut notes);
                for r in &ok {
                    for n in &notes {
                        self.add_note(r.ct.id.as_str(), n);
                    }
                }
                let keep = inc.as_ref().and_then(|i| i.source_id.clone()).map(|id| {
                    let base = Base {
                        snapshot: snap.clone(),
                        provider: vol.provider,
                        id,
                        run: self.run.to_string(),
                    };
                    (key.clone(), base)
                });
                self.leases.insert(
                    snap.name.clone(),
                    Lease {
                        remaining: ok.len(),
                        token,
                        keep,
                        failed: false,
                    },
                );
                for Rested { ct, dump } in ok {
                    let rel = ct
                        .private
                        .strip_prefix(&vol.path)
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    let id = ct.id.to_string();
                    let freeze_ms = self.record(&id).freeze_ms;
                    let job = Job {
                        ct,
                        snap: snap.clone(),
                        rel,
                        dump,
                        freeze_ms,
                        incremental: inc.clone(),
                    };
                    if jobs.send(job).is_err() {
                        self.fail(&id, "archive workers stopped".into());
                        self.release(&snap.name);
                    }
                }
            }
            self.flush_hooks();
            for d in done.try_iter() {
                self.finish_job(d);
            }
            self.flush_hooks();
        }
    }

    fn release(&mut self, snap: &str) {
        let Some(lease) = self.leases.get_mut(snap) else {
            return;
        };
        lease.remaining = lease.remaining.saturating_sub(1);
        if lease.remaining == 0 {
            let token = lease.token;
            let keep = lease.keep.take().filter(|_| !lease.failed);
            self.leases.remove(snap);
            // Unwatched before it goes: a poll after the removal would
            // record a snapshot read whole as "no longer exists".
            self.watch.remove(snap);
            if let Some((key, base)) = keep {
                self.keep_base(&key, base, token);
            } else if let Err(e) = self.cleanup.undo_now(token) {
                self.warnings
                    .push(format!("snapshot {snap} not removed: {e}"));
            }
        }
    }

    fn finish_job(&mut self, d: JobDone) {
        let total = self.elapsed_for(&d.id);
        match d.result {
            Ok(Archived {
                files,
                tree,
                repository,
                bytes_out,
            }) => {
                let outcome = if tree.unreadable > 0 {
                    Outcome::Partial
                } else {
                    Outcome::Ok
                };
                let r = self.record(&d.id);
                r.result = outcome;
                r.error = None;
                r.bytes_in = tree.bytes_read;
                r.bytes_out = bytes_out;
                r.repository = repository;
                r.files = files;
                r.tree = tree;
                r.timings.archive_ms = Some(d.archive_ms);
                r.timings.total_ms = total;
                self.observer.phase(&d.id, &Phase::Finished(outcome));
                self.queued_hooks.push((HookPhase::BackupEnd, d.id.clone()));
            }
            Err(e) => {
                self.record(&d.id).timings.archive_ms = Some(d.archive_ms);
                self.fail(&d.id, e);
                if let Some(l) = self.leases.get_mut(&d.snap) {
                    l.failed = true;
                }
            }
        }
        self.release(&d.snap);
    }
}
