//! The lifecycle driven by fakes: ordering of freeze, snapshot and thaw,
//! and what happens when each step fails.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::plan::VolumePlan;
use super::*;
use crate::config::{
    Compression, Container, ContainerId, ContainerSpec, Mode, ProviderKind, RuntimeKind, Strategy,
    Volume,
};
use crate::runtime::{Listed, Quiesced, Resolved, Runtime, RuntimeError};
use crate::snapshot::{Found, Health, Snapshot, SnapshotError, SnapshotProvider};
use crate::sys::{Clock, Owner};
use crate::target::Outcome;

type Log = Arc<Mutex<Vec<String>>>;

struct FakeRuntime {
    log: Log,
    fail_freeze: Option<&'static str>,
    frozen: Mutex<Vec<String>>,
    /// Milliseconds `quiesce_all` takes before it starts to freeze (as a
    /// runtime that first looks its cgroups up).
    setup_ms: AtomicU64,
}

impl Runtime for FakeRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Cgroup
    }
    fn supports(&self, mode: Mode) -> bool {
        mode == Mode::Snapshot
    }
    fn list(&self, _: &[ContainerSpec]) -> Result<Vec<Listed>, RuntimeError> {
        Ok(Vec::new())
    }
    fn resolve(&self, spec: &ContainerSpec) -> Result<Resolved, RuntimeError> {
        Ok(Resolved {
            private: spec.private.clone().unwrap(),
            config: None,
            running: true,
        })
    }
    fn check(&self, _: &Container) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn plan_quiesce(&self, _: &Container, mode: Mode) -> Result<Quiesced, RuntimeError> {
        Ok(Quiesced {
            mode,
            dump: None,
            note: None,
        })
    }
    fn quiesce(&self, ct: &Container, _: &Quiesced, timeout: Duration) -> Result<(), RuntimeError> {
        self.log.lock().unwrap().push(format!("freeze {}", ct.id));
        if self.fail_freeze == Some(ct.id.as_str()) {
            // Never comes to rest: the whole budget passes.
            std::thread::sleep(timeout);
            return Err(RuntimeError::FreezeTimeout {
                id: ct.id.to_string(),
                timeout,
                path: "x".into(),
                state: "frozen 0".into(),
            });
        }
        self.frozen.lock().unwrap().push(ct.id.to_string());
        Ok(())
    }
    fn quiesce_all(
        &self,
        batch: &[(&Container, &Quiesced)],
        budget: Duration,
    ) -> Vec<Result<Instant, RuntimeError>> {
        std::thread::sleep(Duration::from_millis(self.setup_ms.load(Ordering::SeqCst)));
        crate::runtime::quiesce_each(self, batch, budget)
    }
    fn resume(&self, ct: &Container, _: &Quiesced) -> Result<(), RuntimeError> {
        self.log.lock().unwrap().push(format!("thaw {}", ct.id));
        self.frozen.lock().unwrap().retain(|x| x != ct.id.as_str());
        Ok(())
    }
    fn handle(&self, ct: &Container, _: &Quiesced) -> Result<String, RuntimeError> {
        Ok(ct.id.to_string())
    }
    fn resume_handle(&self, handle: &str) -> Result<(), RuntimeError> {
        self.log.lock().unwrap().push(format!("thaw {handle}"));
        self.frozen.lock().unwrap().retain(|x| x != handle);
        Ok(())
    }
}

struct FakeProvider {
    log: Log,
    fail_create: bool,
    invalid: bool,
    /// The snapshots removed so far: their health says they are gone.
    removed: Mutex<Vec<String>>,
}

impl SnapshotProvider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Btrfs
    }
    fn check(&self, _: &Volume, _: usize) -> Result<(), SnapshotError> {
        Ok(())
    }
    fn exists(&self, _: &Volume, _: &str) -> Result<bool, SnapshotError> {
        Ok(false)
    }
    fn prepare(&self, v: &Volume) -> Result<(), SnapshotError> {
        self.log.lock().unwrap().push(format!("sync {}", v.name));
        Ok(())
    }
    fn handle(&self, v: &Volume, name: &str) -> Result<Snapshot, SnapshotError> {
        // The "snapshot" reads the live tree: enough for ordering tests.
        Ok(Snapshot {
            name: name.into(),
            volume: v.name.clone(),
            root: v.path.clone(),
            device: None,
            origin: None,
        })
    }
    fn create(&self, v: &Volume, name: &str, _: &Owner) -> Result<Snapshot, SnapshotError> {
        self.log.lock().unwrap().push("snapshot".into());
        if self.fail_create {
            return Err(SnapshotError::Unsuitable {
                volume: v.name.clone(),
                path: v.path.clone(),
                reason: "boom".into(),
            });
        }
        self.handle(v, name)
    }
    fn health(&self, s: &Snapshot) -> Result<Health, SnapshotError> {
        if self.removed.lock().unwrap().contains(&s.name) {
            return Ok(Health {
                invalid: Some(format!("snapshot {} no longer exists", s.name)),
                used_percent: None,
            });
        }
        Ok(Health {
            invalid: self.invalid.then(|| "COW area 100% full".into()),
            used_percent: Some(if self.invalid { 100.0 } else { 12.5 }),
        })
    }
    fn remove(&self, s: &Snapshot) -> Result<(), SnapshotError> {
        self.log.lock().unwrap().push("remove".into());
        self.removed.lock().unwrap().push(s.name.clone());
        Ok(())
    }
    fn list(&self, _: &Volume) -> Result<Vec<Found>, SnapshotError> {
        Ok(Vec::new())
    }
}

/// A tar target at the plan's target folder.
fn target(plan: &Plan) -> crate::target::tar::TarTarget {
    crate::target::tar::TarTarget::new(&plan.target)
}

/// Each monotonic reading is 1 ms after the previous one.
struct StepClock(AtomicU64);
impl Clock for StepClock {
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.mono()
    }
    fn mono(&self) -> Duration {
        Duration::from_millis(self.0.fetch_add(1, Ordering::SeqCst))
    }
}

struct Bed {
    dir: tempfile::TempDir,
    log: Log,
    runtime: Arc<FakeRuntime>,
}

fn setup(
    ids: &[&str],
    fail_freeze: Option<&'static str>,
    fail_create: bool,
    invalid: bool,
    strategy: Strategy,
) -> (Bed, Plan, Toolbox) {
    let dir = tempfile::tempdir().unwrap();
    let vol_path = dir.path().join("vol");
    let log: Log = Arc::default();
    let cts: Vec<Container> = ids
        .iter()
        .map(|id| {
            let p = vol_path.join(id);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("file"), id.as_bytes()).unwrap();
            Container {
                id: ContainerId::new(id).unwrap(),
                runtime: RuntimeKind::Cgroup,
                cgroup: Some(PathBuf::from(id)),
                private: p,
                volume: "v".into(),
                config: None,
                running: true,
                exclude: Vec::new(),
            }
        })
        .collect();
    let volume = Volume {
        name: "v".into(),
        path: vol_path,
        provider: ProviderKind::Btrfs,
        snapshot_dir: dir.path().into(),
        keep_base: None,
        lvm: None,
    };
    let plan = Plan {
        mode: Mode::Snapshot,
        strategy,
        compression: Compression::Zstd,
        level: 1,
        jobs: 2,
        threads_per_job: 1,
        freeze_timeout: Duration::from_secs(1),
        target: dir.path().join("target"),
        repository: None,
        state_dir: Some(dir.path().join("state")),
        volumes: vec![VolumePlan {
            volume,
            containers: cts,
        }],
        mounts: Default::default(),
        throttle: Default::default(),
    };
    std::fs::create_dir(&plan.target).unwrap();
    let runtime = Arc::new(FakeRuntime {
        log: log.clone(),
        fail_freeze,
        frozen: Mutex::default(),
        setup_ms: AtomicU64::new(0),
    });
    let tools = Toolbox::new(
        vec![runtime.clone()],
        vec![Arc::new(FakeProvider {
            log: log.clone(),
            fail_create,
            invalid,
            removed: Mutex::default(),
        })],
        Arc::new(StepClock(AtomicU64::new(0))),
        "test".into(),
    );
    (Bed { dir, log, runtime }, plan, tools)
}

fn events(b: &Bed) -> Vec<String> {
    b.log.lock().unwrap().clone()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn group_freezes_all_then_snapshots_then_thaws_in_reverse() {
    let (b, plan, tools) = setup(&["a", "b"], None, false, false, Strategy::Group);
    let r = execute(&plan, &tools, &target(&plan), &SilentObserver).unwrap();
    let ev = events(&b);
    // Both freezes are asked for at once (in either order), then the
    // snapshot, then the thaws in reverse.
    let mut freezes = ev[1..3].to_vec();
    freezes.sort();
    assert_eq!(ev[0], "sync v");
    assert_eq!(freezes, ["freeze a", "freeze b"]);
    assert_eq!(&ev[3..6], ["snapshot", "thaw b", "thaw a"]);
    assert_eq!(events(&b).last().unwrap(), "remove");
    assert!(r
        .manifest
        .containers
        .iter()
        .all(|c| c.result == Outcome::Ok));
    assert!(r
        .manifest
        .containers
        .iter()
        .all(|c| c.freeze_ms.unwrap() > 0.0));
    assert_eq!(files(&r.dir), ["a.tar.zst", "b.tar.zst", "manifest.json"]);
    assert!(b.runtime.frozen.lock().unwrap().is_empty());
    drop(b.dir);
}

#[test]
fn each_takes_one_window_and_one_snapshot_per_container() {
    let (b, plan, tools) = setup(&["a", "b", "c"], None, false, false, Strategy::Each);
    let r = execute(&plan, &tools, &target(&plan), &SilentObserver).unwrap();
    let ev = events(&b);
    for id in ["a", "b", "c"] {
        let f = ev
            .iter()
            .position(|e| *e == format!("freeze {id}"))
            .unwrap();
        assert_eq!(ev[f + 1], "snapshot");
        assert_eq!(ev[f + 2], format!("thaw {id}"));
    }
    assert_eq!(ev.iter().filter(|e| *e == "remove").count(), 3);
    assert_eq!(r.manifest.strategy, Strategy::Each);
}

/// A snapshot released while others are still being taken is no longer
/// watched: the poll after its removal must not mark it invalid (and a
/// good backup read from it as not good).
#[test]
fn a_released_snapshot_is_not_polled_after_its_removal() {
    let (b, plan, tools) = setup(&["a", "b", "c"], None, false, false, Strategy::Each);
    // Each window outlasts a poll of the watch: one runs after the first
    // snapshots are removed and while later ones are live.
    b.runtime
        .setup_ms
        .store(2 * super::watch::POLL.as_millis() as u64, Ordering::SeqCst);
    let r = execute(&plan, &tools, &target(&plan), &SilentObserver).unwrap();
    assert_eq!(r.manifest.snapshots.len(), 3);
    for s in &r.manifest.snapshots {
        assert_eq!(s.invalid, None, "{s:?}");
        assert_eq!(s.peak_used_percent, Some(12.5), "{s:?}");
    }
    assert!(r
        .manifest
        .containers
        .iter()
        .all(|c| c.result == Outcome::Ok));
}

/// The window starts when the runtime saw the container at rest, not when
/// the runtime began: one that spends time before it freezes must not make
/// the manifest claim rest before there was any (a heartbeat written in
/// that gap would be "inside" the window).
#[test]
fn the_window_starts_when_rest_was_seen_not_when_the_runtime_began() {
    let (b, plan, tools) = setup(&["a"], None, false, false, Strategy::Group);
    b.runtime.setup_ms.store(60, Ordering::SeqCst);
    let r = execute(&plan, &tools, &target(&plan), &SilentObserver).unwrap();
    let w = r.manifest.container("a").unwrap().window.unwrap();
    assert!(
        w.frozen_ns - w.requested_ns >= Duration::from_millis(60).as_nanos() as i128,
        "the window claims rest before the runtime froze: {w:?}"
    );
}

#[test]
fn a_failed_freeze_fails_only_that_container() {
    let (b, plan, tools) = setup(&["a", "b", "c"], Some("b"), false, false, Strategy::Group);
    let r = execute(&plan, &tools, &target(&plan), &SilentObserver).unwrap();
    let by = |id: &str| r.manifest.container(id).unwrap().clone();
    assert_eq!(by("a").result, Outcome::Ok);
    assert_eq!(by("c").result, Outcome::Ok);
    assert_eq!(by("b").result, Outcome::Failed);
    assert!(by("b").error.unwrap().contains("freeze failed"));
    // b used half the window; a and c were not held past it, and their
    // snapshot was kept, not discarded with b's failure.
    let budget = Duration::from_millis(500);
    for id in ["a", "c"] {
        let w = by(id).window.unwrap();
        assert!(
            w.frozen_ns - w.requested_ns < budget.as_nanos() as i128,
            "{id} was confirmed frozen early: {w:?}"
        );
    }
    assert!(
        by("b").error.unwrap().contains("not frozen within"),
        "{:?}",
        by("b").error
    );
    assert!(
        events(&b).contains(&"thaw b".to_string()),
        "a failed freeze is undone"
    );
    assert!(b.runtime.frozen.lock().unwrap().is_empty());
}

#[test]
fn a_failed_snapshot_thaws_everyone_and_writes_no_archive() {
    let (b, plan, tools) = setup(&["a", "b"], None, true, false, Strategy::Group);
    let r = execute(&plan, &tools, &target(&plan), &SilentObserver).unwrap();
    assert!(r
        .manifest
        .containers
        .iter()
        .all(|c| c.result == Outcome::Failed));
    assert!(r.manifest.containers[0]
        .error
        .as_ref()
        .unwrap()
        .contains("snapshot failed"));
    let ev = events(&b);
    let snap = ev.iter().position(|e| e == "snapshot").unwrap();
    assert!(
        ev[snap + 1..].contains(&"thaw a".to_string())
            && ev[snap + 1..].contains(&"thaw b".to_string())
    );
    assert!(
        ev.contains(&"remove".to_string()),
        "a half-made snapshot is removed"
    );
    assert_eq!(files(&r.dir), ["manifest.json"]);
    assert!(b.runtime.frozen.lock().unwrap().is_empty());
}

#[test]
fn an_invalid_snapshot_is_never_reported_good() {
    let (_b, plan, tools) = setup(&["a"], None, false, true, Strategy::Group);
    let r = execute(&plan, &tools, &target(&plan), &SilentObserver).unwrap();
    let c = &r.manifest.containers[0];
    assert_eq!(c.result, Outcome::Failed);
    assert!(
        c.error.as_ref().unwrap().contains("became invalid"),
        "{:?}",
        c.error
    );
    assert_eq!(
        files(&r.dir),
        ["manifest.json"],
        "the archive was discarded"
    );
}

/// Panics when asked for a snapshot: a bug inside a freeze window.
struct PanicOnCreate;

impl SnapshotProvider for PanicOnCreate {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Btrfs
    }
    fn check(&self, _: &Volume, _: usize) -> Result<(), SnapshotError> {
        Ok(())
    }
    fn prepare(&self, _: &Volume) -> Result<(), SnapshotError> {
        Ok(())
    }
    fn exists(&self, _: &Volume, _: &str) -> Result<bool, SnapshotError> {
        Ok(false)
    }
    fn handle(&self, v: &Volume, name: &str) -> Result<Snapshot, SnapshotError> {
        Ok(Snapshot {
            name: name.into(),
            volume: v.name.clone(),
            root: v.path.clone(),
            device: None,
            origin: None,
        })
    }
    fn create(&self, _: &Volume, _: &str, _: &Owner) -> Result<Snapshot, SnapshotError> {
        panic!("bug inside the freeze window");
    }
    fn health(&self, _: &Snapshot) -> Result<Health, SnapshotError> {
        Ok(Health::ok())
    }
    fn remove(&self, _: &Snapshot) -> Result<(), SnapshotError> {
        Ok(())
    }
    fn list(&self, _: &Volume) -> Result<Vec<Found>, SnapshotError> {
        Ok(Vec::new())
    }
}

#[test]
fn a_panic_inside_a_window_unwinds_and_thaws_instead_of_hanging() {
    let (b, plan, mut tools) = setup(&["a", "b"], None, false, false, Strategy::Group);
    tools.providers = vec![Arc::new(PanicOnCreate)];
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute(&plan, &tools, &target(&plan), &SilentObserver)
        }));
        let _ = tx.send(r.is_err());
    });
    let panicked = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("execute hung after a panic inside the window");
    assert!(panicked, "the panic propagates");
    t.join().unwrap();
    assert!(
        b.runtime.frozen.lock().unwrap().is_empty(),
        "unwinding thawed every container"
    );
}
