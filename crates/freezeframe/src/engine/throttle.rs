//! `[throttle]` in a run: planned with the rest (devices found, the
//! cgroup hierarchy checked, before anything is frozen), applied to the
//! archive phase only. The cgroup's removal is registered before the first
//! freeze window; it is created when the first archive job starts (after
//! the first freeze window has thawed). Then, by cgroup version:
//! - v1 `blkio`: each worker thread joins it before it archives; the
//!   thread that freezes never does;
//! - v2 `io`: the process joins it (v2 moves whole processes) and leaves
//!   it for every later freeze window, its archive writes held until the
//!   window has closed, so the window is never limited and the archive
//!   never unlimited.
//!
//! Each worker thread lowers its own priority (`nice`) either way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::Config;
use crate::sys::mountinfo::{cgroup_mounts, MountEntry};
use crate::sys::throttle::{self, v1, v2, IoLimits};
use crate::target::BackupWriter;

use super::plan::PlanError;

/// What the archive phase is limited to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottlePlan {
    /// The cgroup to create for the archive workers, if I/O is limited.
    pub group: Option<PathBuf>,
    /// cgroup v2: the process's own cgroup, where it goes back to for
    /// every freeze window (`None`: v1, where threads join one by one).
    pub home: Option<PathBuf>,
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
        match (&self.group, &self.home) {
            (Some(g), None) => parts.push(format!("archive workers in cgroup {}", g.display())),
            (Some(g), Some(h)) => parts.push(format!(
                "archive phase in cgroup {} (cgroup v2: the whole process, back in {} with archive writes held for every freeze window)",
                g.display(),
                h.display()
            )),
            _ => {}
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

/// The disks a folder's file system lives on (walking up to a folder
/// that exists); empty if none is found.
fn disks_for(table: &[MountEntry], path: &Path, sysfs: &Path) -> Vec<(u32, u32)> {
    let Some(existing) = path.ancestors().find(|p| p.exists()) else {
        return Vec::new();
    };
    let Ok(real) = std::fs::canonicalize(existing) else {
        return Vec::new();
    };
    mount_of(table, &real).map_or_else(Vec::new, |m| {
        throttle::disks_of(Path::new(&m.source), sysfs)
    })
}

/// Where the archive group goes: `(hierarchy root, home)`, v2 (with its
/// `io` controller) before v1 `blkio`.
fn hierarchy(
    table: &[MountEntry],
    cgroup_file: &Path,
) -> Result<(PathBuf, Option<PathBuf>), PlanError> {
    let mounts = cgroup_mounts(table);
    let v2_io = mounts.v2.filter(|r| v2::offers_io(r));
    if let Some(root) = v2_io.clone().filter(|r| v2::io_enabled(r)) {
        let home = v2::home(cgroup_file, &root).map_err(|e| {
            PlanError::Missing(format!(
                "[throttle] needs this process's cgroup v2 path: {e}"
            ))
        })?;
        return Ok((root, Some(home)));
    }
    match (mounts.v1_blkio, v2_io) {
        (Some(root), _) => Ok((root, None)),
        (None, Some(root)) => Err(PlanError::Missing(format!(
            "[throttle] io_weight / io_read_max / io_write_max need the cgroup v2 io controller enabled for the root's children, and it is not: enable it once with `echo +io > {}` (systemd does it for a unit with IOAccounting=yes, as freezeframe-backup.service has), or use nice and bwlimit",
            root.join("cgroup.subtree_control").display()
        ))),
        (None, None) => Err(PlanError::Missing(
            "[throttle] io_weight / io_read_max / io_write_max need cgroup v2 with its io controller or the cgroup v1 blkio hierarchy, and this host has neither (use nice and bwlimit; see freezeframe.toml(5))".into(),
        )),
    }
}

/// Plans `config.throttle`: finds the volumes' and the target's disks and
/// the cgroup hierarchy (`cgroup_file`: this process's `/proc/self/cgroup`).
/// Fails (nothing touched) if an I/O limit cannot be applied on this host.
pub fn plan_throttle(
    config: &Config,
    volumes: &[&Path],
    table: &[MountEntry],
    sysfs: &Path,
    cgroup_file: &Path,
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
    let (root, home) = hierarchy(table, cgroup_file)?;
    if let Some(bps) = t.io_read_max {
        for v in volumes {
            let devs = disks_for(table, v, sysfs);
            if devs.is_empty() {
                return Err(PlanError::Missing(format!(
                    "[throttle] io_read_max: no block device found under volume {}",
                    v.display()
                )));
            }
            for dev in devs {
                if !p.limits.read_bps.iter().any(|(d, _)| *d == dev) {
                    p.limits.read_bps.push((dev, bps));
                }
            }
        }
    }
    if let Some(bps) = t.io_write_max {
        let target = config.target.path();
        let devs = disks_for(table, target, sysfs);
        if devs.is_empty() {
            return Err(PlanError::Missing(format!(
                "[throttle] io_write_max: no block device found under the target {}",
                target.display()
            )));
        }
        p.limits
            .write_bps
            .extend(devs.into_iter().map(|d| (d, bps)));
    }
    p.limits.weight = t.io_weight;
    p.group = Some(throttle::group_path(&root, std::process::id()));
    p.home = home;
    Ok(p)
}

/// The archive workers' side of a run's throttle. The group's removal is
/// registered (journaled) before the run's first freeze window; the group
/// itself is created by the first archive job.
pub(super) struct WorkerThrottle<'a> {
    plan: &'a ThrottlePlan,
    /// The run's writer, held during freeze windows on cgroup v2.
    writer: Arc<dyn BackupWriter>,
    /// The group, created by the first job (or why it could not be).
    group: OnceLock<Result<PathBuf, String>>,
    /// cgroup v2: where the process is.
    process: Mutex<Process>,
    /// Warnings for the manifest.
    pub warnings: Mutex<Vec<String>>,
}

/// Where the process is, on cgroup v2.
#[derive(Debug, Default)]
struct Process {
    /// An archive job has started: the process belongs in the group.
    wanted: bool,
    /// It is in the group.
    inside: bool,
    /// A freeze window is open.
    window: bool,
}

/// An open freeze window: on cgroup v2 the process is out of the archive
/// group and archive writes are held; dropped, both are undone.
pub(super) struct OpenWindow<'t, 'a> {
    throttle: &'t WorkerThrottle<'a>,
    held: bool,
}

impl Drop for OpenWindow<'_, '_> {
    fn drop(&mut self) {
        let t = self.throttle;
        if t.plan.home.is_some() {
            let mut p = t.process.lock().unwrap_or_else(|e| e.into_inner());
            p.window = false;
            if p.wanted && !p.inside {
                t.join_process(&mut p);
            }
        }
        if self.held {
            t.writer.hold(false);
        }
    }
}

impl<'a> WorkerThrottle<'a> {
    pub(super) fn new(plan: &'a ThrottlePlan, writer: Arc<dyn BackupWriter>) -> Self {
        WorkerThrottle {
            plan,
            writer,
            group: OnceLock::new(),
            process: Mutex::default(),
            warnings: Mutex::default(),
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

    /// The group, created on first use.
    fn group(&self) -> Option<&Result<PathBuf, String>> {
        let path = self.plan.group.as_ref()?;
        Some(self.group.get_or_init(|| {
            let made = match self.plan.home {
                Some(_) => v2::create(path, &self.plan.limits),
                None => v1::create(path, &self.plan.limits),
            };
            for w in made.map_err(|e| e.to_string())? {
                self.warn(w);
            }
            Ok(path.clone())
        }))
    }

    /// Moves the process into the group (cgroup v2).
    fn join_process(&self, p: &mut Process) {
        let joined = match self.group() {
            Some(Ok(g)) => v2::move_process(g, std::process::id()).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e.clone()),
            None => return,
        };
        match joined {
            Ok(()) => p.inside = true,
            Err(e) => self.warn(format!("the archive phase runs unthrottled: {e}")),
        }
    }

    /// Moves the process back to its own cgroup (cgroup v2); whether it
    /// is out of the group.
    fn leave_process(&self, p: &mut Process) -> bool {
        let Some(home) = &self.plan.home else {
            return true;
        };
        if !p.inside {
            return true;
        }
        match v2::move_process(home, std::process::id()) {
            Ok(()) => {
                p.inside = false;
                true
            }
            Err(e) => {
                self.warn(format!("could not leave the archive cgroup: {e}"));
                false
            }
        }
    }

    /// Applies the limits to the calling worker thread (v1), or has the
    /// process join the group unless a freeze window is open (v2, then
    /// when it closes); a limit that cannot be applied is a warning, never
    /// a failed backup.
    pub(super) fn enter(&self) {
        if let Some(n) = self.plan.nice {
            let tid = rustix::thread::gettid();
            if let Err(e) = rustix::process::setpriority_process(Some(tid), n) {
                self.warn(format!("throttle.nice = {n} not applied: {e}"));
            }
        }
        if self.plan.home.is_some() {
            let mut p = self.process.lock().unwrap_or_else(|e| e.into_inner());
            p.wanted = true;
            if !p.window && !p.inside {
                self.join_process(&mut p);
            }
            return;
        }
        let joined = match self.group() {
            Some(Ok(g)) => v1::join_thread(g).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e.clone()),
            None => return,
        };
        if let Err(e) = joined {
            self.warn(format!("the archive workers run unthrottled: {e}"));
        }
    }

    /// A freeze window opens (the coordinator, before its hooks and
    /// journal): on cgroup v2 archive writes are held and the process
    /// leaves the group until the returned guard is dropped.
    pub(super) fn window(&self) -> OpenWindow<'_, 'a> {
        let mut held = false;
        if self.plan.home.is_some() {
            let mut p = self.process.lock().unwrap_or_else(|e| e.into_inner());
            p.window = true;
            if p.inside {
                self.writer.hold(true);
                held = true;
                self.leave_process(&mut p);
            }
        }
        OpenWindow {
            throttle: self,
            held,
        }
    }

    /// The archive phase is over: the process leaves the group (v2), so
    /// that it can be removed.
    pub(super) fn finish(&self) {
        let mut p = self.process.lock().unwrap_or_else(|e| e.into_inner());
        p.wanted = false;
        self.leave_process(&mut p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_mount(root: &Path) -> MountEntry {
        MountEntry {
            dev: (0, 30),
            mount_point: root.to_owned(),
            fs_type: "cgroup2".into(),
            source: "cgroup2".into(),
            root: "/".into(),
            super_options: "rw".into(),
        }
    }

    #[test]
    fn cgroup_v2_is_used_only_once_the_roots_children_have_io() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::write(root.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "memory pids\n").unwrap();
        std::fs::create_dir(root.join("ff.scope")).unwrap();
        std::fs::write(root.join("ff.scope/cgroup.procs"), "").unwrap();
        let cg = root.join("self-cgroup");
        std::fs::write(&cg, "0::/ff.scope\n").unwrap();
        let table = [v2_mount(root)];

        // Not enabled: refused before anything, saying how, and the
        // host's subtree_control left as it was.
        let Err(PlanError::Missing(e)) = hierarchy(&table, &cg) else {
            panic!("planned without io enabled");
        };
        assert!(
            e.contains("echo +io >") && e.contains("IOAccounting=yes"),
            "{e}"
        );
        let control = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
        assert_eq!(control, "memory pids\n");

        std::fs::write(root.join("cgroup.subtree_control"), "io memory pids\n").unwrap();
        let (at, home) = hierarchy(&table, &cg).unwrap();
        assert_eq!(at, root);
        assert_eq!(home, Some(root.join("ff.scope")));
    }
}
