//! `[throttle]` in a run: planned with the rest (devices found, the
//! cgroup hierarchy checked, before anything is frozen), applied by the
//! archive workers only. The cgroup's removal is registered before the
//! first freeze window; it is created when the first archive job starts
//! (after the first freeze window has thawed); each worker thread joins it and lowers its own
//! priority before it archives; the thread that freezes never does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::config::Config;
use crate::sys::mountinfo::{cgroup_mounts, MountEntry};
use crate::sys::throttle::{self, IoLimits};

use super::plan::PlanError;

/// What the archive phase is limited to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottlePlan {
    /// The cgroup to create for the archive workers, if I/O is limited.
    pub group: Option<PathBuf>,
    /// Its limits.
    pub limits: IoLimits,
    /// The workers' nice value.
    pub nice: Option<i32>,
    /// Bytes/s written to the target.
    pub bwlimit: Option<u64>,
}

impl ThrottlePlan {
    /// One line for `--dry-run`, if anything is limited.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(g) = &self.group {
            parts.push(format!("archive workers in cgroup {}", g.display()));
        }
        if let Some(w) = self.limits.weight {
            parts.push(format!("io weight {w}"));
        }
        for ((a, b), bps) in &self.limits.read_bps {
            parts.push(format!("read {bps} B/s from {a}:{b}"));
        }
        for ((a, b), bps) in &self.limits.write_bps {
            parts.push(format!("write {bps} B/s to {a}:{b}"));
        }
        if let Some(n) = self.nice {
            parts.push(format!("nice {n}"));
        }
        if let Some(b) = self.bwlimit {
            parts.push(format!("bwlimit {b} B/s to the target"));
        }
        (!parts.is_empty()).then(|| format!("throttle (archive phase only): {}", parts.join(", ")))
    }
}

/// The mount holding `path` (the deepest mount point above it).
fn mount_of<'t>(table: &'t [MountEntry], path: &Path) -> Option<&'t MountEntry> {
    table
        .iter()
        .filter(|e| path.starts_with(&e.mount_point))
        .max_by_key(|e| e.mount_point.components().count())
}

/// The disk a folder's file system lives on (walking up to a folder that
/// exists).
fn disk_for(table: &[MountEntry], path: &Path, sysfs: &Path) -> Option<(u32, u32)> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let m = mount_of(table, &std::fs::canonicalize(existing).ok()?)?;
    throttle::disk_of(Path::new(&m.source), sysfs)
}

/// Plans `config.throttle`: finds the volumes' and the target's disks and
/// the blkio hierarchy. Fails (nothing touched) if an I/O limit cannot be
/// applied on this host.
pub fn plan_throttle(
    config: &Config,
    volumes: &[&Path],
    table: &[MountEntry],
    sysfs: &Path,
) -> Result<ThrottlePlan, PlanError> {
    let t = &config.throttle;
    let mut p = ThrottlePlan {
        nice: t.nice,
        bwlimit: t.bwlimit,
        ..ThrottlePlan::default()
    };
    if !t.needs_cgroup() {
        return Ok(p);
    }
    let Some(root) = cgroup_mounts(table).v1_blkio else {
        return Err(PlanError::Missing(
            "[throttle] io_weight / io_read_max / io_write_max need the cgroup v1 blkio hierarchy, which this host does not mount (on a cgroup v2-only host use nice and bwlimit; see freezeframe.toml(5))".into(),
        ));
    };
    if let Some(bps) = t.io_read_max {
        for v in volumes {
            let dev = disk_for(table, v, sysfs).ok_or_else(|| {
                PlanError::Missing(format!(
                    "[throttle] io_read_max: no block device found under volume {}",
                    v.display()
                ))
            })?;
            if !p.limits.read_bps.iter().any(|(d, _)| *d == dev) {
                p.limits.read_bps.push((dev, bps));
            }
        }
    }
    if let Some(bps) = t.io_write_max {
        let target = config.target.path();
        let dev = disk_for(table, target, sysfs).ok_or_else(|| {
            PlanError::Missing(format!(
                "[throttle] io_write_max: no block device found under the target {}",
                target.display()
            ))
        })?;
        p.limits.write_bps.push((dev, bps));
    }
    p.limits.weight = t.io_weight;
    p.group = Some(throttle::group_path(&root, std::process::id()));
    Ok(p)
}

/// The archive workers' side of a run's throttle. The group's removal is
/// registered (journaled) before the run's first freeze window; the group
/// itself is created by the first archive job.
pub(super) struct WorkerThrottle<'a> {
    plan: &'a ThrottlePlan,
    /// The group, created by the first job (or why it could not be).
    group: OnceLock<Result<PathBuf, String>>,
    /// Warnings for the manifest.
    pub warnings: std::sync::Mutex<Vec<String>>,
}

impl<'a> WorkerThrottle<'a> {
    pub(super) fn new(plan: &'a ThrottlePlan) -> Self {
        WorkerThrottle {
            plan,
            group: OnceLock::new(),
            warnings: std::sync::Mutex::default(),
        }
    }

    fn warn(&self, w: String) {
        tracing::warn!("{w}");
        if let Ok(mut v) = self.warnings.lock() {
            if !v.contains(&w) {
                v.push(w);
            }
        }
    }

    /// Applies the limits to the calling worker thread; a limit that
    /// cannot be applied is a warning, never a failed backup.
    pub(super) fn enter(&self) {
        if let Some(n) = self.plan.nice {
            let tid = rustix::thread::gettid();
            if let Err(e) = rustix::process::setpriority_process(Some(tid), n) {
                self.warn(format!("throttle.nice = {n} not applied: {e}"));
            }
        }
        let Some(path) = &self.plan.group else {
            return;
        };
        let group = self.group.get_or_init(|| {
            let warnings = throttle::create(path, &self.plan.limits).map_err(|e| e.to_string())?;
            for w in warnings {
                self.warn(w);
            }
            Ok(path.clone())
        });
        let joined = match group {
            Ok(p) => throttle::join(p).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = joined {
            self.warn(format!("the archive workers run unthrottled: {e}"));
        }
    }
}
