//! Reconciling the journal: undo what a dead run left behind (thaw first,
//! then snapshots and incomplete run folders), and, while holding the host
//! lock, remove freezeframe snapshots no journal knows of.

use std::sync::Arc;

use super::bases::forget_bases;
use super::cleanup::{remove_incomplete_run, UndoError};
use super::Toolbox;
use crate::config::{ProviderKind, Volume};
use crate::snapshot::SnapshotProvider;
use crate::state::journal::JOURNAL_NAME;
use crate::state::{is_current_base, Bases, Journal, JournalError, Pending, Step};

/// Which journal entries to undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those of processes that are gone (`recover`, start of a run: the
    /// caller holds the host lock).
    Dead,
    /// Those written by this PID (the guardian, for its parent).
    Owner(u32),
}

/// What reconciling did.
#[derive(Debug, Clone, Default)]
pub struct RecoverReport {
    /// One line per action taken.
    pub actions: Vec<String>,
    /// Undo steps that failed (they stay in the journal).
    pub failures: Vec<String>,
    /// Notes: entries left alone, unreadable journal lines.
    pub notes: Vec<String>,
}

/// Removes the snapshots of `v` that are provably freezeframe's (exact
/// name form, read-only, a snapshot of this very volume: the provider
/// checks) and provably abandoned (their recorded maker is gone). Anything
/// else is left alone with a note saying why.
fn sweep_volume(v: &Volume, tools: &Toolbox, report: &mut RecoverReport) {
    let Some(p) = tools.provider(v.provider) else {
        return;
    };
    let found = match p.list(v) {
        Ok(f) => f,
        Err(e) => {
            report
                .failures
                .push(format!("volume {}: cannot list snapshots: {e}", v.name));
            return;
        }
    };
    for f in found {
        let s = &f.snapshot;
        let left_alone = |why: String| {
            format!(
                "left alone: {} on volume {} ({}): {why}",
                s.name,
                v.name,
                s.device
                    .clone()
                    .unwrap_or_else(|| s.root.display().to_string())
            )
        };
        match (&f.foreign, &f.owner) {
            (Some(why), _) => report.notes.push(left_alone(format!(
                "named like a freezeframe snapshot, but {why}"
            ))),
            (None, None) => report.notes.push(left_alone(
                "no owner record, so it cannot be shown to be abandoned (made by an older \
                 freezeframe?); if no run is using it, remove it by hand"
                    .into(),
            )),
            (None, Some(o)) if o.alive() => report.notes.push(left_alone(format!(
                "in use by {}, still running",
                o.describe()
            ))),
            (None, Some(o)) if is_current_base(&o.state_dir, s) => {
                report.notes.push(left_alone(format!(
                    "the current base snapshot of state dir {} (kept for the next run)",
                    o.state_dir.display()
                )))
            }
            (None, Some(o)) => match p.remove(s) {
                Ok(()) => report.actions.push(format!(
                    "removed orphaned snapshot {} of volume {} (its maker, {}, is gone)",
                    s.name,
                    v.name,
                    o.describe()
                )),
                Err(e) => report
                    .failures
                    .push(format!("orphaned snapshot {}: {e}", s.name)),
            },
        }
    }
}

/// The provider of `kind` for undoing a step on `what` (a snapshot, a
/// pool), or why there is none.
fn provider_for<'t>(
    tools: &'t Toolbox,
    kind: ProviderKind,
    what: &str,
) -> Result<&'t Arc<dyn SnapshotProvider>, UndoError> {
    tools.provider(kind).ok_or_else(|| UndoError::NoProvider {
        provider: kind,
        snapshot: what.to_owned(),
    })
}

/// Undoes one journaled step.
pub fn undo_step(step: &Step, tools: &Toolbox) -> Result<String, UndoError> {
    match step {
        Step::Freeze {
            container,
            runtime,
            handle,
        } => {
            let rt = tools
                .runtime(*runtime)
                .ok_or_else(|| UndoError::NoRuntime {
                    runtime: *runtime,
                    container: container.clone(),
                })?;
            rt.resume_handle(handle)?;
            Ok(format!("thawed container {container}"))
        }
        Step::Snapshot { provider, snapshot } => {
            provider_for(tools, *provider, &snapshot.name)?.remove(snapshot)?;
            Ok(format!("removed snapshot {}", snapshot.name))
        }
        Step::Hold { provider, hold } => {
            provider_for(tools, *provider, &hold.pool)?.release_hold(hold)?;
            Ok(format!(
                "released the metadata snapshot of thin pool {} (if it was still held)",
                hold.pool
            ))
        }
        Step::ArchiveGroup { path } => {
            crate::sys::throttle::remove(path).map_err(|source| UndoError::Remove {
                path: path.clone(),
                source,
            })?;
            Ok(format!("removed archive cgroup {}", path.display()))
        }
        Step::CopyStaging { path } => Ok(if super::copy::remove_staging(path)? {
            format!("removed restore staging folder {}", path.display())
        } else {
            format!("restore staging folder {} needs nothing", path.display())
        }),
        Step::CopyPlaced {
            path,
            dev,
            ino,
            registered_by,
        } => {
            let placed = super::copy::Placed {
                path: path.clone(),
                dev: *dev,
                ino: *ino,
                registered_by: registered_by.clone(),
            };
            Ok(if placed.remove()? {
                format!("removed unregistered restored copy {}", path.display())
            } else {
                format!("restored copy {} needs nothing", path.display())
            })
        }
        Step::RunDir { path } => {
            let existed =
                path.exists() && !path.join(crate::target::layout::MANIFEST_NAME).exists();
            remove_incomplete_run(path)?;
            Ok(if existed {
                format!("removed incomplete run {}", path.display())
            } else {
                format!("run {} needs nothing", path.display())
            })
        }
    }
}

/// Thaws every journaled freeze in `scope` now (the guardian at a deadline).
pub fn thaw_now(
    state_dir: &std::path::Path,
    tools: &Toolbox,
    scope: Scope,
) -> Result<RecoverReport, JournalError> {
    reconcile(state_dir, tools, &[], scope, true)
}

/// Reconciles the journal in `state_dir`: thaws first, then the rest, newest
/// first. With `Scope::Dead` the caller holds the host lock, so freezeframe
/// snapshots of `volumes` that no live run owns are removed too, and a
/// journal with nothing pending is emptied.
pub fn recover(
    state_dir: &std::path::Path,
    tools: &Toolbox,
    volumes: &[Volume],
    scope: Scope,
) -> Result<RecoverReport, JournalError> {
    reconcile(state_dir, tools, volumes, scope, false)
}

fn reconcile(
    state_dir: &std::path::Path,
    tools: &Toolbox,
    volumes: &[Volume],
    scope: Scope,
    thaw_only: bool,
) -> Result<RecoverReport, JournalError> {
    let path = state_dir.join(JOURNAL_NAME);
    let (pending, notes) = Journal::pending(&path)?;
    let mut report = RecoverReport {
        notes,
        ..Default::default()
    };
    let pending: Vec<Pending> = pending
        .into_iter()
        .filter(|p| !thaw_only || matches!(p.step, Step::Freeze { .. }))
        .collect();
    let (mine, others): (Vec<Pending>, Vec<Pending>) =
        pending.into_iter().partition(|p| match scope {
            Scope::Dead => !p.owner_alive(),
            Scope::Owner(pid) => p.pid == pid,
        });
    for p in &others {
        report.notes.push(format!(
            "left alone: {} (journaled by PID {}, still running)",
            p.step, p.pid
        ));
    }
    let journal = if mine.is_empty() {
        None
    } else {
        Some(Arc::new(Journal::open(state_dir, "recover")?))
    };
    let (thaws, rest): (Vec<&Pending>, Vec<&Pending>) = mine
        .iter()
        .partition(|p| matches!(p.step, Step::Freeze { .. }));
    for p in thaws.into_iter().chain(rest.into_iter().rev()) {
        match undo_step(&p.step, tools) {
            Ok(what) => {
                report.actions.push(what);
                if let Some(j) = &journal {
                    j.done(&p.key)?;
                }
            }
            Err(e) => report.failures.push(format!("{}: {e}", p.step)),
        }
    }
    if scope == Scope::Dead && !thaw_only {
        for v in volumes {
            sweep_volume(v, tools, &mut report);
        }
        if report.failures.is_empty() {
            Journal::clear_if_settled(state_dir)?;
        }
    }
    Ok(report)
}

/// Removes the base snapshots `state_dir` records that this config can no
/// longer use: their volume is gone from it, keeps no base (see
/// `Volume::keeps_base`), or the target is not a repository; or their
/// container (when each container had a snapshot of its own) is gone.
/// Then no base is kept for nothing.
pub fn drop_unconfigured_bases(
    state_dir: &std::path::Path,
    tools: &Toolbox,
    config: &crate::config::Config,
) -> RecoverReport {
    let mut report = RecoverReport::default();
    let Ok(mut bases) = Bases::load(state_dir) else {
        return report;
    };
    let repository = config.target.repository().is_some();
    let usable = |key: &str| {
        let (vol, ct) = Bases::split_key(key);
        let vol_ok = config
            .volumes
            .iter()
            .any(|v| v.name == vol && v.keeps_base());
        let ct_ok = ct.is_none_or(|c| config.containers.iter().any(|s| s.id.as_str() == c));
        repository && vol_ok && ct_ok
    };
    let stale: Vec<String> = bases.bases.keys().filter(|k| !usable(k)).cloned().collect();
    if stale.is_empty() {
        return report;
    }
    let gone = match forget_bases(&mut bases, &stale, state_dir, tools) {
        Ok(gone) => gone,
        Err(e) => {
            report
                .failures
                .push(format!("base snapshots not dropped: {e}"));
            return report;
        }
    };
    for (b, removed) in gone {
        match removed {
            Some(Ok(())) => report.actions.push(format!(
                "removed base snapshot {} (its volume or container is no longer configured for bases)",
                b.snapshot.name
            )),
            Some(Err(e)) => report
                .failures
                .push(format!("base snapshot {}: {e}", b.snapshot.name)),
            None => report.notes.push(format!(
                "base snapshot {} dropped from the record; the next sweep removes it",
                b.snapshot.name
            )),
        }
    }
    report
}
