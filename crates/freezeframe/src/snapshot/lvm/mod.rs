//! LVM snapshots, classic (`lvcreate -s -L`, a COW area that can overflow)
//! and thin (`lvcreate -s` of a thin LV, space from the pool). Every
//! snapshot is named `ff-…` and tagged `freezeframe`, so orphans are found
//! by tag and nothing else is ever removed. No `fsfreeze` before
//! `lvcreate -s`: LVM suspends the origin itself, and a frozen file system
//! makes the suspend fail. Snapshots are mounted read-only after the thaw,
//! `nosuid,nodev,noexec` (and `noload` for ext4, `norecovery,nouuid` for
//! xfs: no journal replay). The maker of each
//! snapshot rides along as a second tag ([`Owner::to_tag`]), so the orphan
//! sweep removes only snapshots whose maker is gone — LVM keeps tags across
//! reboots, where files under `/run` would be lost.

mod commands;
mod delta;
mod file_ranges;
pub mod report;
mod thin_base;
mod thin_changes;

pub use delta::DeltaError;

pub use commands::{create_cmd, lvs_cmd, mount_options, snapshot_mib, vgs_cmd};

/// A file of `fixtures/` (output captured from the real tools).
#[cfg(test)]
fn fixture(name: &str) -> PathBuf {
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(dir)
        .join("src/snapshot/lvm/fixtures")
        .join(name)
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use report::{parse_lvs, parse_vgs, Lv};

use super::{
    is_snapshot_name, Found, Health, Hold, Snapshot, SnapshotError, SnapshotProvider, VolumeChanges,
};
use crate::config::{LvmOptions, ProviderKind, SnapshotSize, Volume};
use crate::sys::fs::syncfs;
use crate::sys::mountinfo::{parse as parse_mountinfo, MountEntry};
use crate::sys::{Cmd, CommandRunner, Owner};
use crate::target::SourceId;

/// The tag on every snapshot freezeframe creates.
pub const TAG: &str = "freezeframe";

const MIB: u64 = 1 << 20;

/// The origin LV of a volume and the file system on it.
#[derive(Debug, Clone)]
struct Origin {
    lv: Lv,
    fs_type: String,
}

/// Classic or thin LVM snapshots.
pub struct LvmProvider {
    runner: Arc<dyn CommandRunner>,
    thin: bool,
    mountinfo: PathBuf,
    lock_dir: PathBuf,
    /// How long a run waits for another freezeframe's hold of a pool's
    /// metadata snapshot before it reads changed files whole.
    lock_wait: Duration,
    origins: Mutex<HashMap<String, Origin>>,
}

fn err_cmd(volume: &str, source: crate::sys::CommandError) -> SnapshotError {
    SnapshotError::Command {
        volume: volume.to_owned(),
        source,
    }
}

impl LvmProvider {
    /// A classic (`thin = false`) or thin provider running LVM through `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>, thin: bool) -> Self {
        Self {
            runner,
            thin,
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            lock_dir: PathBuf::from("/run/lock"),
            lock_wait: thin_base::POOL_LOCK_WAIT,
            origins: Mutex::default(),
        }
    }

    /// Keeps the per-pool locks (see `thin_base`) in `dir` instead of
    /// `/run/lock`.
    pub fn with_lock_dir(mut self, dir: PathBuf) -> Self {
        self.lock_dir = dir;
        self
    }

    /// Waits at most `wait` for another freezeframe's hold of a thin
    /// pool's metadata snapshot (see `thin_base`).
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Reads the mount table from `path` instead of `/proc/self/mountinfo`.
    pub fn with_mountinfo(mut self, path: PathBuf) -> Self {
        self.mountinfo = path;
        self
    }

    fn options(volume: &Volume) -> LvmOptions {
        volume.lvm.clone().unwrap_or(LvmOptions {
            lv: None,
            snapshot_size: SnapshotSize::Percent(20.0),
            warn_percent: 80.0,
            autoextend_percent: None,
            thin_max_data_percent: 80.0,
            thin_max_metadata_percent: 80.0,
        })
    }

    fn unsuitable(volume: &Volume, path: &Path, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Unsuitable {
            volume: volume.name.clone(),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn mounts(&self) -> Vec<MountEntry> {
        std::fs::read_to_string(&self.mountinfo)
            .map(|t| parse_mountinfo(&t))
            .unwrap_or_default()
    }

    fn lvs(
        &self,
        volume: &str,
        target: Option<&str>,
        tagged: bool,
    ) -> Result<Vec<Lv>, SnapshotError> {
        let out = self
            .runner
            .run(&lvs_cmd(target, tagged))
            .map_err(|e| err_cmd(volume, e))?;
        parse_lvs(&out.stdout).map_err(|reason| SnapshotError::Unsuitable {
            volume: volume.to_owned(),
            path: PathBuf::new(),
            reason,
        })
    }

    /// The LV behind the volume and its file system (found through the
    /// mount table, or named by `lv = "vg/lv"`).
    fn origin(&self, volume: &Volume) -> Result<Origin, SnapshotError> {
        let mount = self
            .mounts()
            .into_iter()
            .rev()
            .find(|m| m.mount_point == volume.path);
        let Some(mount) = mount else {
            return Err(Self::unsuitable(volume, &volume.path, "is not a mount point: the lvm providers need the volume path to be where its LV is mounted"));
        };
        let opts = Self::options(volume);
        let lv = match &opts.lv {
            Some(name) => self
                .lvs(&volume.name, Some(name), false)?
                .into_iter()
                .next(),
            None => self
                .lvs(&volume.name, None, false)?
                .into_iter()
                .find(|l| l.dev == (mount.dev.0 as i64, mount.dev.1 as i64)),
        };
        let lv = lv.ok_or_else(|| {
            Self::unsuitable(volume, &volume.path, "is not the mount point of an LVM logical volume (no LV has its device number); check the volume path or set lv = \"vg/lv\"")
        })?;
        if lv.dev != (mount.dev.0 as i64, mount.dev.1 as i64) {
            return Err(Self::unsuitable(
                volume,
                &volume.path,
                format!("is not where {} is mounted", lv.full_name()),
            ));
        }
        let o = Origin {
            lv,
            fs_type: mount.fs_type,
        };
        self.origins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(volume.name.clone(), o.clone());
        Ok(o)
    }

    fn cached_origin(&self, volume: &Volume) -> Result<Origin, SnapshotError> {
        let cached = self
            .origins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&volume.name)
            .cloned();
        match cached {
            Some(o) => Ok(o),
            None => self.origin(volume),
        }
    }

    fn device(snap: &Snapshot) -> Result<&str, SnapshotError> {
        snap.device
            .as_deref()
            .ok_or_else(|| SnapshotError::NotOurs(format!("{} has no LVM device", snap.name)))
    }

    fn is_mounted(&self, dir: &Path) -> bool {
        self.mounts().iter().any(|m| m.mount_point == dir)
    }

    /// Why `lv` is not provably a snapshot of ours of `origin` (`vg/lv`);
    /// `None`: it is.
    fn foreign(lv: &Lv, origin: Option<&str>) -> Option<String> {
        if !lv.has_tag(TAG) {
            return Some(format!("not tagged `{TAG}`"));
        }
        let of = format!("{}/{}", lv.vg, lv.origin);
        match origin {
            _ if lv.origin.is_empty() => Some("not a snapshot (no origin)".into()),
            Some(want) if want != of => Some(format!("a snapshot of {of}, not of {want}")),
            _ => None,
        }
    }

    fn current(&self, snap: &Snapshot) -> Result<Option<Lv>, SnapshotError> {
        let dev = Self::device(snap)?;
        let vg = dev.split('/').next().unwrap_or("");
        Ok(self
            .lvs(&snap.volume, Some(vg), false)?
            .into_iter()
            .find(|l| l.full_name() == dev))
    }
}

impl SnapshotProvider for LvmProvider {
    fn identity(&self, snap: &Snapshot) -> Result<Option<SourceId>, SnapshotError> {
        self.thin_identity(snap)
    }

    fn change_hold(&self, _base: &Snapshot, new: &Snapshot) -> Result<Option<Hold>, SnapshotError> {
        self.thin_hold(new)
    }

    fn release_hold(&self, hold: &Hold) -> Result<(), SnapshotError> {
        self.thin_release(hold)
    }

    fn changes(
        &self,
        base: &Snapshot,
        new: &Snapshot,
        _scratch: &Path,
        held: &dyn Fn(),
    ) -> Result<Option<VolumeChanges>, SnapshotError> {
        self.thin_changes(base, new, held)
    }

    fn kind(&self) -> ProviderKind {
        if self.thin {
            ProviderKind::LvmThin
        } else {
            ProviderKind::Lvm
        }
    }

    fn check(&self, volume: &Volume, snapshots: usize) -> Result<(), SnapshotError> {
        let o = self.origin(volume)?;
        let opts = Self::options(volume);
        let name = o.lv.full_name();
        if self.thin {
            if !o.lv.is_thin() {
                return Err(Self::unsuitable(
                    volume,
                    &volume.path,
                    format!("is on {name}, which is not a thin LV: use provider = \"lvm\""),
                ));
            }
            let pool = format!("{}/{}", o.lv.vg, o.lv.pool);
            let p = self
                .lvs(&volume.name, Some(&pool), false)?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    Self::unsuitable(
                        volume,
                        &volume.path,
                        format!("thin pool {pool} of {name} not found"),
                    )
                })?;
            let (data, meta) = (
                p.data_percent.unwrap_or(0.0),
                p.metadata_percent.unwrap_or(0.0),
            );
            if data > opts.thin_max_data_percent {
                return Err(Self::unsuitable(volume, &volume.path, format!(
                    "sits on thin pool {pool}, whose data is {data:.1}% full, above thin_max_data_percent = {}: a snapshot could fill it and turn {name} read-only; extend the pool (lvextend) or free space first",
                    opts.thin_max_data_percent
                )));
            }
            if meta > opts.thin_max_metadata_percent {
                return Err(Self::unsuitable(volume, &volume.path, format!(
                    "sits on thin pool {pool}, whose metadata is {meta:.1}% full, above thin_max_metadata_percent = {}; extend the pool metadata (lvextend --poolmetadatasize) first",
                    opts.thin_max_metadata_percent
                )));
            }
            return Ok(());
        }
        if o.lv.is_thin() {
            return Err(Self::unsuitable(
                volume,
                &volume.path,
                format!("is on {name}, a thin LV: use provider = \"lvm-thin\""),
            ));
        }
        let out = self
            .runner
            .run(&vgs_cmd(&o.lv.vg))
            .map_err(|e| err_cmd(&volume.name, e))?;
        let vg = parse_vgs(&out.stdout)
            .map_err(|reason| Self::unsuitable(volume, &volume.path, reason))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Self::unsuitable(
                    volume,
                    &volume.path,
                    format!("volume group {} not found", o.lv.vg),
                )
            })?;
        let each = snapshot_mib(opts.snapshot_size, o.lv.size, vg.extent) * MIB;
        let need = each * snapshots.max(1) as u64;
        if need > vg.free {
            return Err(Self::unsuitable(volume, &volume.path, format!(
                "needs {} MiB for {} snapshot(s) of {name} (snapshot_size = {} of {} MiB), but volume group {} has only {} MiB free; free space in the VG or set a smaller snapshot_size",
                need / MIB, snapshots.max(1), opts.snapshot_size, o.lv.size / MIB, vg.name, vg.free / MIB
            )));
        }
        Ok(())
    }

    fn prepare(&self, volume: &Volume) -> Result<(), SnapshotError> {
        // Flush now; no fsfreeze: `lvcreate -s` suspends the origin itself.
        syncfs(&volume.path).map_err(|source| SnapshotError::Io {
            volume: volume.name.clone(),
            path: volume.path.clone(),
            source,
        })
    }

    fn exists(&self, volume: &Volume, name: &str) -> Result<bool, SnapshotError> {
        let o = self.cached_origin(volume)?;
        let taken = self
            .lvs(&volume.name, Some(&o.lv.vg), false)?
            .iter()
            .any(|l| l.name == name);
        Ok(taken || std::fs::symlink_metadata(volume.snapshot_dir.join(name)).is_ok())
    }

    fn handle(&self, volume: &Volume, name: &str) -> Result<Snapshot, SnapshotError> {
        let o = self.cached_origin(volume)?;
        Ok(Snapshot {
            name: name.to_owned(),
            volume: volume.name.clone(),
            root: volume.snapshot_dir.join(name),
            device: Some(format!("{}/{name}", o.lv.vg)),
            origin: Some(o.lv.full_name()),
        })
    }

    fn create(
        &self,
        volume: &Volume,
        name: &str,
        owner: &Owner,
    ) -> Result<Snapshot, SnapshotError> {
        if !is_snapshot_name(name, &volume.name) {
            return Err(SnapshotError::NotOurs(name.to_owned()));
        }
        let o = self.cached_origin(volume)?;
        let size =
            (!self.thin).then(|| snapshot_mib(Self::options(volume).snapshot_size, o.lv.size, MIB));
        self.runner
            .run(&create_cmd(&o.lv.full_name(), name, size, owner))
            .map_err(|e| err_cmd(&volume.name, e))?;
        self.handle(volume, name)
    }

    fn activate(&self, snap: &Snapshot) -> Result<(), SnapshotError> {
        let dev = Self::device(snap)?;
        let fs_type = self
            .origins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&snap.volume)
            .map(|o| o.fs_type.clone())
            .unwrap_or_default();
        if self.thin {
            // Thin snapshots carry the activation-skip flag.
            self.runner
                .run(&Cmd::new("lvchange").arg("-ay").arg("-K").arg(dev))
                .map_err(|e| err_cmd(&snap.volume, e))?;
        }
        std::fs::create_dir_all(&snap.root).map_err(|source| SnapshotError::Io {
            volume: snap.volume.clone(),
            path: snap.root.clone(),
            source,
        })?;
        let cmd = Cmd::new("mount")
            .arg("-o")
            .arg(mount_options(&fs_type))
            .arg(format!("/dev/{dev}"))
            .arg(&snap.root);
        self.runner
            .run(&cmd)
            .map_err(|e| err_cmd(&snap.volume, e))?;
        Ok(())
    }

    fn extend(&self, snap: &Snapshot, percent: f64) -> Result<(), SnapshotError> {
        if self.thin {
            return Err(SnapshotError::NotOurs(format!(
                "{}: thin snapshots grow from their pool",
                snap.name
            )));
        }
        let lv = self
            .current(snap)?
            .ok_or_else(|| SnapshotError::NotOurs(format!("{} not found", snap.name)))?;
        let mib = ((lv.size as f64 * percent / 100.0) / MIB as f64)
            .ceil()
            .max(1.0) as u64;
        let cmd = Cmd::new("lvextend")
            .arg("-L")
            .arg(format!("+{mib}m"))
            .arg(Self::device(snap)?);
        self.runner
            .run(&cmd)
            .map(|_| ())
            .map_err(|e| err_cmd(&snap.volume, e))
    }

    fn health(&self, snap: &Snapshot) -> Result<Health, SnapshotError> {
        let Some(lv) = self.current(snap)? else {
            return Ok(Health {
                invalid: Some(format!("snapshot {} no longer exists", snap.name)),
                used_percent: None,
            });
        };
        if self.thin {
            let pool = format!("{}/{}", lv.vg, lv.pool);
            let used = self
                .lvs(&snap.volume, Some(&pool), false)?
                .into_iter()
                .next()
                .and_then(|p| p.data_percent);
            let full = used.is_some_and(|u| u >= 100.0);
            return Ok(Health {
                invalid: full.then(|| format!("thin pool {pool} is full: writes to the snapshot and its origin fail; extend the pool and back up again")),
                used_percent: used,
            });
        }
        let used = lv.snap_percent;
        let invalid = (lv.is_invalid() || used.is_some_and(|u| u >= 100.0)).then(|| {
            format!(
                "snapshot {} overflowed: its copy-on-write area of {} MiB filled up ({}% used) while the backup was read; set snapshot_size larger than what is written to the volume during a backup, or set autoextend_percent",
                lv.full_name(),
                lv.size / MIB,
                used.map(|u| format!("{u:.2}")).unwrap_or_else(|| "100".into())
            )
        });
        Ok(Health {
            invalid,
            used_percent: used,
        })
    }

    fn remove(&self, snap: &Snapshot) -> Result<(), SnapshotError> {
        if !is_snapshot_name(&snap.name, &snap.volume) {
            return Err(SnapshotError::NotOurs(snap.name.clone()));
        }
        let dev = Self::device(snap)?.to_owned();
        // Checked before anything is unmounted: a foreign LV is not touched.
        let lv = self.current(snap)?;
        if let Some(lv) = &lv {
            if let Some(why) = Self::foreign(lv, snap.origin.as_deref()) {
                return Err(SnapshotError::NotOurs(format!("{dev}: {why}")));
            }
        }
        // A killed run's guardian and `recover` may undo the same journal
        // at once: what the other one removed meanwhile is removed.
        if self.is_mounted(&snap.root) {
            if let Err(e) = self.runner.run(&Cmd::new("umount").arg(&snap.root)) {
                if self.is_mounted(&snap.root) {
                    return Err(err_cmd(&snap.volume, e));
                }
            }
        }
        if snap.root.file_name().and_then(|n| n.to_str()) == Some(snap.name.as_str()) {
            let _ = std::fs::remove_dir(&snap.root);
        }
        if lv.is_none() {
            return Ok(());
        }
        match self.runner.run(&Cmd::new("lvremove").arg("-f").arg(&dev)) {
            Ok(_) => Ok(()),
            Err(_) if matches!(self.current(snap), Ok(None)) => Ok(()),
            Err(e) => Err(err_cmd(&snap.volume, e)),
        }
    }

    fn list(&self, volume: &Volume) -> Result<Vec<Found>, SnapshotError> {
        let o = self.cached_origin(volume)?;
        let mut out = Vec::new();
        for lv in self.lvs(&volume.name, Some(&o.lv.vg), false)? {
            if !is_snapshot_name(&lv.name, &volume.name) {
                continue;
            }
            out.push(Found {
                foreign: Self::foreign(&lv, Some(&o.lv.full_name())),
                owner: lv
                    .tags
                    .iter()
                    .find_map(|t| Owner::from_tag(t))
                    .map(|o| o.with_state_tag(lv.tags.iter().map(String::as_str))),
                snapshot: self.handle(volume, &lv.name)?,
            });
        }
        out.sort_by(|a, b| a.snapshot.name.cmp(&b.snapshot.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
