//! One freeze window, step by step: the hooks and plans of its containers
//! (nothing frozen yet), the snapshot's name and the journal of every undo
//! (one fsync), the freeze of all at once, the snapshot, the thaw, and the
//! verdict on the snapshot. Every step that must be undone is registered
//! before it is done.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::cleanup::{Token, Undo};
use super::lifecycle::{ms, unix_ns, Run};
use super::observer::Phase;
use super::rest::{rest_all, ToRest};
use crate::config::{Container, Strategy, Volume};
use crate::snapshot::{Snapshot, SnapshotError, SnapshotProvider};
use crate::sys::{HookPhase, HumanDuration};
use crate::target::manifest::FreezeWindow;
use crate::target::RunId;

/// A container brought to rest in a window, and the dump it left.
pub(super) struct Rested {
    pub ct: Container,
    pub dump: Option<std::path::PathBuf>,
}

/// A container at rest in the current window: its undo token, when the
/// freeze was requested (monotonic and wall) and confirmed, its dump.
struct Frozen {
    ct: Container,
    token: Token,
    t0: Duration,
    requested: SystemTime,
    confirmed: SystemTime,
    dump: Option<std::path::PathBuf>,
}

/// The undo tokens of a window: one per container, then the snapshot's.
struct Registered {
    tokens: Vec<Token>,
    snapshot: Token,
    name: String,
}

/// Name of the snapshot of a freeze window: the first of the run's
/// candidates that nothing on the volume has taken yet.
fn snapshot_name(
    provider: &dyn SnapshotProvider,
    run: &RunId,
    volume: &Volume,
    strategy: Strategy,
    ct: &Container,
) -> Result<String, SnapshotError> {
    let per_container = (strategy == Strategy::Each).then_some(&ct.id);
    let short = run.short();
    for name in crate::snapshot::candidates(&short, &volume.name, per_container) {
        if !provider.exists(volume, &name)? {
            return Ok(name);
        }
    }
    Err(SnapshotError::Taken(crate::snapshot::snapshot_name(
        &short,
        &volume.name,
        per_container,
    )))
}

impl Run<'_> {
    /// One freeze window: journal, freeze `cts`, snapshot, thaw. Returns the
    /// snapshot and the containers to archive from it.
    pub(super) fn window(
        &mut self,
        vol: &Volume,
        cts: &[Container],
        provider: &Arc<dyn SnapshotProvider>,
    ) -> Option<(Snapshot, Token, Vec<Rested>)> {
        let ready = self.prepare(cts);
        if ready.is_empty() {
            return None;
        }
        let reg = self.register(vol, provider, &ready)?;
        let timeout = self.plan.freeze_timeout;
        let window_t0 = self.tools.clock.mono();
        let frozen = self.freeze(ready, &reg.tokens, timeout);
        let created = if frozen.is_empty() {
            None
        } else {
            let (cancel, faults) = (&self.tools.cancel, &self.tools.faults);
            faults.hit("after-freeze", cancel);
            let s0 = self.tools.clock.mono();
            let c = provider.create(vol, &reg.name, &self.owner);
            let snapshot_ms = ms(self.tools.clock.mono().saturating_sub(s0));
            faults.hit("after-snapshot", cancel);
            Some((c, snapshot_ms))
        };
        let ok = self.thaw(frozen, created.as_ref().map(|c| c.1));
        let window = self.tools.clock.mono().saturating_sub(window_t0);
        self.tools.faults.hit("after-thaw", &self.tools.cancel);
        self.conclude(
            vol,
            provider,
            created.map(|c| c.0),
            window,
            ok,
            reg.snapshot,
        )
    }

    /// Hooks first, all of them: none may run while a container is frozen.
    /// Returns the containers to bring to rest, each with its runtime and
    /// plan.
    fn prepare(&mut self, cts: &[Container]) -> Vec<ToRest> {
        let mut ready = Vec::new();
        for ct in cts {
            let id = ct.id.to_string();
            self.started.insert(id.clone(), self.tools.clock.mono());
            let Some(rt) = self.tools.runtime(ct.runtime).cloned() else {
                self.fail(&id, format!("no {} runtime", ct.runtime));
                continue;
            };
            let q = match rt.plan_quiesce(ct, self.plan.mode) {
                Ok(q) => q,
                Err(e) => {
                    self.fail(&id, format!("not frozen: {e}"));
                    continue;
                }
            };
            {
                let r = self.record(&id);
                r.mode = Some(q.mode);
                r.note = q.note.clone();
            }
            let hooks = self
                .hook(HookPhase::BackupStart, Some(&id), None)
                .and_then(|_| self.hook(HookPhase::PreFreeze, Some(&id), None));
            match hooks {
                Ok(()) => ready.push((ct.clone(), rt, q)),
                Err(e) => self.fail(&id, format!("not frozen: {e}")),
            }
        }
        ready
    }

    /// Names the snapshot, journals every undo of the window (one fsync)
    /// and tells the guardian the window opens. `None`: the window's
    /// containers failed, nothing is frozen.
    fn register(
        &mut self,
        vol: &Volume,
        provider: &Arc<dyn SnapshotProvider>,
        ready: &[ToRest],
    ) -> Option<Registered> {
        let fail_all = |this: &mut Self, why: String| {
            for (c, _, _) in ready {
                this.fail(c.id.as_str(), why.clone());
            }
        };
        let handle = snapshot_name(
            provider.as_ref(),
            &self.run,
            vol,
            self.plan.strategy,
            &ready[0].0,
        )
        .and_then(|name| provider.handle(vol, &name));
        let handle = match handle {
            Ok(h) => h,
            Err(e) => {
                fail_all(self, format!("not frozen: {e}"));
                return None;
            }
        };
        let name = handle.name.clone();
        let mut undos: Vec<Undo> = ready
            .iter()
            .map(|(c, rt, q)| Undo::Resume(rt.clone(), c.clone(), q.clone()))
            .collect();
        undos.push(Undo::RemoveSnapshot(provider.clone(), handle));
        let mut tokens = match self.cleanup.register_all(undos) {
            Ok(t) => t,
            Err(e) => {
                fail_all(self, format!("not frozen: cannot journal the freeze: {e}"));
                return None;
            }
        };
        let snapshot = tokens.pop().expect("the snapshot's token");
        self.tools
            .faults
            .hit("after-journal-freeze", &self.tools.cancel);
        let deadline = self.tools.clock.wall() + self.plan.freeze_timeout;
        if let Err(e) = self.tools.watchdog.window_open(deadline) {
            fail_all(self, format!("not frozen: {e}"));
            for t in tokens.into_iter().chain([snapshot]) {
                self.cleanup.done(t);
            }
            return None;
        }
        Some(Registered {
            tokens,
            snapshot,
            name,
        })
    }

    /// Every container of the window at once, with half the window to come
    /// to rest: one that does not is thawed and fails alone, and the
    /// snapshot of the others still fits in the deadline.
    fn freeze(&mut self, ready: Vec<ToRest>, tokens: &[Token], timeout: Duration) -> Vec<Frozen> {
        for (ct, _, _) in &ready {
            self.observer.phase(ct.id.as_str(), &Phase::Freezing);
        }
        // `start` before `w0`: `w0 + (at - start)` is then never earlier
        // than the moment `at`, and the manifest's window never claims a
        // container was at rest before it was.
        let start = Instant::now();
        let (t0, w0) = (self.tools.clock.mono(), self.tools.clock.wall());
        let rested = rest_all(&ready, timeout / 2);
        let mut frozen = Vec::new();
        for (((ct, _, q), token), r) in ready.into_iter().zip(tokens.iter().copied()).zip(rested) {
            match r {
                Ok(at) => frozen.push(Frozen {
                    ct,
                    token,
                    t0,
                    requested: w0,
                    confirmed: w0 + at.saturating_duration_since(start),
                    dump: q.dump,
                }),
                Err(e) => {
                    // A failed freeze thaws; thaw once more to be sure.
                    if let Err(te) = self.cleanup.undo_now(token) {
                        self.warnings.push(te.to_string());
                    }
                    self.fail(ct.id.as_str(), format!("freeze failed: {e}"));
                }
            }
        }
        frozen
    }

    /// Thaws, newest first, recording each container's window; returns
    /// those thawed, in order. The guardian is told the window closed.
    fn thaw(&mut self, frozen: Vec<Frozen>, snapshot_ms: Option<f64>) -> Vec<Rested> {
        let clock = self.tools.clock.clone();
        let mut ok = Vec::new();
        let mut done = Vec::new();
        // Told to the observer after the window: no progress bar drawn in it.
        let mut told = Vec::new();
        // All thaws first; their journal records after, with one fsync: a
        // hundred containers must not wait for a hundred fsyncs.
        for f in frozen.into_iter().rev() {
            let id = f.ct.id.to_string();
            let wt = clock.wall();
            let mut thawed = self.cleanup.undo_unjournaled(f.token);
            for _ in 0..3 {
                if thawed.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
                thawed = self.cleanup.undo_unjournaled(f.token);
            }
            if thawed.is_ok() {
                done.push(f.token);
            }
            let (t1, w1) = (clock.mono(), clock.wall());
            let freeze_ms = ms(t1.saturating_sub(f.t0));
            {
                let r = self.record(&id);
                r.freeze_ms = Some(freeze_ms);
                r.timings.freeze_ms = Some(freeze_ms);
                r.timings.snapshot_ms = snapshot_ms;
                r.window = Some(FreezeWindow {
                    requested_ns: unix_ns(f.requested),
                    frozen_ns: unix_ns(f.confirmed),
                    thaw_ns: unix_ns(wt),
                    thawed_ns: unix_ns(w1),
                });
            }
            told.push((id.clone(), freeze_ms));
            match thawed {
                Ok(()) => ok.push(Rested {
                    ct: f.ct,
                    dump: f.dump,
                }),
                Err(e) => self.fail(
                    &id,
                    format!("THAW FAILED, the container may still be frozen: {e}"),
                ),
            }
        }
        self.cleanup.done_all(&done);
        self.tools.watchdog.window_closed();
        for (id, freeze_ms) in told {
            self.observer.phase(&id, &Phase::Thawed { freeze_ms });
        }
        ok.reverse();
        for r in &ok {
            self.hook_warn(HookPhase::PostThaw, Some(r.ct.id.as_str()), None);
        }
        ok
    }

    /// The verdict on the window's snapshot: kept (mounted, watched) and
    /// handed on with its containers, or discarded with every container of
    /// the window failed and the reason.
    fn conclude(
        &mut self,
        vol: &Volume,
        provider: &Arc<dyn SnapshotProvider>,
        created: Option<Result<Snapshot, SnapshotError>>,
        window: Duration,
        ok: Vec<Rested>,
        stoken: Token,
    ) -> Option<(Snapshot, Token, Vec<Rested>)> {
        let timeout = self.plan.freeze_timeout;
        let why = match created {
            None => String::new(),
            Some(Err(e)) => format!("snapshot failed: {e}"),
            Some(Ok(_)) if window > timeout => format!(
                "the freeze window took {:.0} ms, past the freeze_timeout deadline of {}: the guardian thawed the \
                 container at the deadline, so the snapshot may be inconsistent and was discarded \
                 (raise backup.freeze_timeout or find what stalled)",
                ms(window),
                HumanDuration(timeout)
            ),
            Some(Ok(_)) if ok.is_empty() => String::new(),
            Some(Ok(snap)) => match provider.activate(&snap) {
                Ok(()) => {
                    self.watch.add(&snap, provider.clone(), vol);
                    return Some((snap, stoken, ok));
                }
                Err(e) => format!("snapshot {} could not be mounted: {e}", snap.name),
            },
        };
        if let Err(re) = self.cleanup.undo_now(stoken) {
            self.warnings.push(re.to_string());
        }
        for Rested { ct, .. } in &ok {
            self.fail(ct.id.as_str(), why.clone());
        }
        None
    }
}
