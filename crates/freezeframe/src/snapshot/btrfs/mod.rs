//! btrfs: read-only subvolume snapshots (`btrfs subvolume snapshot -r`).
//!
//! Each snapshot's maker is recorded beside it, in `<name>.owner` in the
//! snapshot folder, before the snapshot is taken. Only a subvolume of the
//! exact name form, read-only, whose parent UUID is the volume's own, is
//! ever removed; the orphan sweep also needs its owner to be gone.

mod changes;
mod show;

pub use changes::{send_changes, ChangesError};
pub use show::{parse_show, SubvolInfo};

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{
    is_snapshot_name, Found, Health, Snapshot, SnapshotError, SnapshotProvider, VolumeChanges,
};
use crate::config::{ProviderKind, Volume};
use crate::sys::fs::{fs_magic, read_regular, syncfs, BTRFS_SUPER_MAGIC};
use crate::sys::owner::MAX_OWNER_RECORD;
use crate::sys::{Cmd, CommandRunner, Owner};
use crate::target::SourceId;

/// Inode number of the root of every btrfs subvolume.
const BTRFS_SUBVOL_ROOT_INO: u64 = 256;

/// Suffix of the owner record beside a snapshot.
const OWNER_SUFFIX: &str = ".owner";

/// btrfs snapshot provider.
#[derive(Clone)]
pub struct BtrfsProvider {
    runner: Arc<dyn CommandRunner>,
    /// Subvolume UUID of each volume path seen.
    uuids: Arc<Mutex<HashMap<PathBuf, String>>>,
}

impl BtrfsProvider {
    /// A provider running `btrfs` through `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            runner,
            uuids: Arc::default(),
        }
    }

    /// The `btrfs` command deleting the subvolume at `path`.
    pub fn delete_cmd(path: &Path) -> Cmd {
        Cmd::new("btrfs")
            .arg("subvolume")
            .arg("delete")
            .arg("--commit-after")
            .arg(path)
    }

    /// The `btrfs` command describing the subvolume at `path`.
    pub fn show_cmd(path: &Path) -> Cmd {
        Cmd::new("btrfs").arg("subvolume").arg("show").arg(path)
    }

    fn snapshot_path(volume: &Volume, name: &str) -> PathBuf {
        volume.snapshot_dir.join(name)
    }

    fn owner_path(root: &Path) -> PathBuf {
        let mut s = root.as_os_str().to_owned();
        s.push(OWNER_SUFFIX);
        PathBuf::from(s)
    }

    fn unsuitable(volume: &Volume, path: &Path, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Unsuitable {
            volume: volume.name.clone(),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn io(volume: &str, path: &Path, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io {
            volume: volume.to_owned(),
            path: path.to_owned(),
            source,
        }
    }

    /// Bytes only the subvolume at `path` holds (`btrfs filesystem du`):
    /// what removing it would free.
    pub fn exclusive_bytes(&self, path: &Path) -> Result<u64, SnapshotError> {
        let cmd = Cmd::new("btrfs")
            .arg("filesystem")
            .arg("du")
            .arg("-s")
            .arg("--raw")
            .arg(path);
        let out = self
            .runner
            .run(&cmd)
            .map_err(|source| SnapshotError::Command {
                volume: String::new(),
                source,
            })?;
        parse_du_exclusive(&out.stdout).ok_or_else(|| SnapshotError::Unsuitable {
            volume: String::new(),
            path: path.to_owned(),
            reason: format!(
                "`btrfs filesystem du` printed no sizes: {}",
                out.stdout.trim()
            ),
        })
    }

    /// What `btrfs subvolume show` says of `path`.
    pub fn info(&self, volume: &str, path: &Path) -> Result<SubvolInfo, SnapshotError> {
        let out =
            self.runner
                .run(&Self::show_cmd(path))
                .map_err(|source| SnapshotError::Command {
                    volume: volume.to_owned(),
                    source,
                })?;
        parse_show(&out.stdout).map_err(|e| SnapshotError::Unsuitable {
            volume: volume.to_owned(),
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    fn volume_uuid(&self, volume: &Volume) -> Result<String, SnapshotError> {
        let mut g = self.uuids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = g.get(&volume.path) {
            return Ok(u.clone());
        }
        let uuid = self.info(&volume.name, &volume.path)?.uuid;
        g.insert(volume.path.clone(), uuid.clone());
        Ok(uuid)
    }

    /// Why the subvolume at `root` is not provably a snapshot of ours of
    /// the subvolume `origin` (`None`: it is).
    fn foreign(&self, volume: &str, root: &Path, origin: Option<&str>) -> Option<String> {
        let is_subvol = std::fs::symlink_metadata(root)
            .map(|m| m.is_dir() && m.ino() == BTRFS_SUBVOL_ROOT_INO)
            .unwrap_or(false);
        if !is_subvol {
            return Some("not a btrfs subvolume".into());
        }
        let info = match self.info(volume, root) {
            Ok(i) => i,
            Err(e) => return Some(format!("cannot be inspected: {e}")),
        };
        if !info.readonly {
            return Some("a read-write subvolume, not a read-only snapshot".into());
        }
        match (origin, info.parent_uuid.as_deref()) {
            (Some(want), Some(got)) if want == got => None,
            (Some(_), Some(got)) => Some(format!(
                "a snapshot of another subvolume (parent UUID {got}), not of the volume"
            )),
            (Some(_), None) => Some("not a snapshot (no parent UUID)".into()),
            (None, _) => None,
        }
    }

    fn read_owner(root: &Path) -> Option<Owner> {
        read_regular(&Self::owner_path(root), MAX_OWNER_RECORD)
            .ok()
            .and_then(|b| Owner::from_json(&b))
    }
}

/// Writes the owner record: created exclusively (that claims the name), in
/// place rather than through a temporary file, so a kill leaves nothing
/// but the record itself — which the journaled removal of the snapshot
/// takes away, and which the sweep, finding no snapshot beside it, ignores.
fn write_owner(record: &Path, owner: &Owner) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(record)?;
    f.write_all(&owner.to_json())?;
    f.sync_all()?;
    crate::sys::fs::fsync_dir(record.parent().unwrap_or(Path::new(".")))
}

/// The `Exclusive` column of `btrfs filesystem du -s --raw` output.
fn parse_du_exclusive(text: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head: Vec<&str> = lines.next()?.split_whitespace().collect();
    let col = head.iter().position(|c| *c == "Exclusive")?;
    lines.next()?.split_whitespace().nth(col)?.parse().ok()
}

impl SnapshotProvider for BtrfsProvider {
    fn identity(&self, snap: &Snapshot) -> Result<Option<SourceId>, SnapshotError> {
        let info = self.info(&snap.volume, &snap.root)?;
        Ok(Some(SourceId {
            uuid: info.uuid,
            generation: info.generation,
        }))
    }

    fn changes(
        &self,
        base: &Snapshot,
        new: &Snapshot,
        scratch: &Path,
        _held: &dyn Fn(),
    ) -> Result<Option<VolumeChanges>, SnapshotError> {
        send_changes(&*self.runner, &base.root, &new.root, scratch)
            .map(|c| Some(c.into()))
            .map_err(|source| SnapshotError::Changes {
                volume: new.volume.clone(),
                source,
            })
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Btrfs
    }

    fn check(&self, volume: &Volume, _snapshots: usize) -> Result<(), SnapshotError> {
        let p = &volume.path;
        let magic = fs_magic(p).map_err(|e| Self::io(&volume.name, p, e))?;
        if magic != BTRFS_SUPER_MAGIC {
            return Err(Self::unsuitable(
                volume,
                p,
                "is not on btrfs: the btrfs provider needs the volume path to be a btrfs subvolume \
                 (create one with `btrfs subvolume create`, or choose another provider)",
            ));
        }
        let ino = std::fs::metadata(p)
            .map_err(|e| Self::io(&volume.name, p, e))?
            .ino();
        if ino != BTRFS_SUBVOL_ROOT_INO {
            return Err(Self::unsuitable(
                volume,
                p,
                "is a plain directory on btrfs, not a subvolume: convert it with \
                 `btrfs subvolume create` and move the private areas into it",
            ));
        }
        let d = &volume.snapshot_dir;
        let dm = fs_magic(d).map_err(|e| {
            Self::io(
                &volume.name,
                d,
                std::io::Error::new(
                    e.kind(),
                    format!("{e} (snapshot_dir must exist on the same btrfs file system)"),
                ),
            )
        })?;
        if dm != BTRFS_SUPER_MAGIC {
            return Err(Self::unsuitable(
                volume,
                d,
                "(snapshot_dir) is not on btrfs: it must be on the volume's btrfs file system",
            ));
        }
        self.volume_uuid(volume).map(|_| ())
    }

    fn prepare(&self, volume: &Volume) -> Result<(), SnapshotError> {
        syncfs(&volume.path).map_err(|e| Self::io(&volume.name, &volume.path, e))
    }

    fn exists(&self, volume: &Volume, name: &str) -> Result<bool, SnapshotError> {
        let root = Self::snapshot_path(volume, name);
        Ok(std::fs::symlink_metadata(&root).is_ok()
            || std::fs::symlink_metadata(Self::owner_path(&root)).is_ok())
    }

    fn handle(&self, volume: &Volume, name: &str) -> Result<Snapshot, SnapshotError> {
        Ok(Snapshot {
            name: name.to_owned(),
            volume: volume.name.clone(),
            root: Self::snapshot_path(volume, name),
            device: None,
            origin: Some(self.volume_uuid(volume)?),
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
        let snap = self.handle(volume, name)?;
        let record = Self::owner_path(&snap.root);
        write_owner(&record, owner).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                SnapshotError::Taken(name.to_owned())
            } else {
                Self::io(&volume.name, &record, e)
            }
        })?;
        // The ioctl, not `btrfs subvolume snapshot`: see `sys::btrfs_ioctl`.
        let made = crate::sys::btrfs_ioctl::snapshot_readonly(
            &volume.path,
            &volume.snapshot_dir,
            std::ffi::OsStr::new(name),
        );
        if let Err(source) = made {
            let _ = std::fs::remove_file(&record);
            return Err(SnapshotError::Create {
                volume: volume.name.clone(),
                from: volume.path.clone(),
                to: snap.root.clone(),
                source,
            });
        }
        Ok(snap)
    }

    fn health(&self, _snap: &Snapshot) -> Result<Health, SnapshotError> {
        // btrfs snapshots share extents with the origin: they cannot overflow.
        Ok(Health::ok())
    }

    fn list(&self, volume: &Volume) -> Result<Vec<Found>, SnapshotError> {
        let d = &volume.snapshot_dir;
        let rd = match std::fs::read_dir(d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&volume.name, d, e)),
        };
        let origin = self.volume_uuid(volume)?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if !is_dir || !is_snapshot_name(&name, &volume.name) {
                continue;
            }
            let snapshot = self.handle(volume, &name)?;
            out.push(Found {
                foreign: self.foreign(&volume.name, &snapshot.root, Some(&origin)),
                owner: Self::read_owner(&snapshot.root),
                snapshot,
            });
        }
        out.sort_by(|a, b| a.snapshot.name.cmp(&b.snapshot.name));
        Ok(out)
    }

    fn remove(&self, snap: &Snapshot) -> Result<(), SnapshotError> {
        let base = snap.root.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !is_snapshot_name(base, &snap.volume) || base != snap.name {
            return Err(SnapshotError::NotOurs(snap.root.display().to_string()));
        }
        let record = Self::owner_path(&snap.root);
        // Gone already, or gone while we looked (a killed run's guardian
        // and `recover` may undo the same journal at once): removed.
        let gone = || {
            let g = std::fs::symlink_metadata(&snap.root).is_err();
            if g {
                let _ = std::fs::remove_file(&record);
            }
            g
        };
        if gone() {
            return Ok(());
        }
        if let Some(why) = self.foreign(&snap.volume, &snap.root, snap.origin.as_deref()) {
            if gone() {
                return Ok(());
            }
            return Err(SnapshotError::NotOurs(format!(
                "{}: {why}",
                snap.root.display()
            )));
        }
        if let Err(source) = self.runner.run(&Self::delete_cmd(&snap.root)) {
            if gone() {
                return Ok(());
            }
            return Err(SnapshotError::Command {
                volume: snap.volume.clone(),
                source,
            });
        }
        let _ = std::fs::remove_file(&record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exclusive_size_is_read_from_btrfs_du() {
        // Captured from btrfs-progs 6.2.
        let out = "     Total   Exclusive  Set shared  Filename\n   2002944      303104     1699840  /mnt/fx-base\n";
        assert_eq!(parse_du_exclusive(out), Some(303_104));
        assert_eq!(parse_du_exclusive("ERROR: not a btrfs"), None);
    }

    #[test]
    fn commands_are_built_as_expected() {
        let d = BtrfsProvider::delete_cmd(Path::new("/srv/.s/ff-1-data"));
        assert_eq!(
            d.to_string(),
            "btrfs subvolume delete --commit-after /srv/.s/ff-1-data"
        );
    }

    #[test]
    fn refuses_to_remove_what_is_not_named_like_ours() {
        let p = BtrfsProvider::new(Arc::new(crate::sys::SystemRunner));
        for (name, root) in [
            ("home", "/srv/home"),
            ("ff-userdata", "/srv/.s/ff-userdata"),
            ("ff-20261124T180501-v", "/srv/.s/other"),
        ] {
            let s = Snapshot {
                name: name.into(),
                volume: "v".into(),
                root: root.into(),
                device: None,
                origin: None,
            };
            assert!(
                matches!(p.remove(&s), Err(SnapshotError::NotOurs(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn non_btrfs_volume_is_refused_clearly() {
        let d = tempfile::tempdir().unwrap();
        if fs_magic(d.path()).unwrap() == BTRFS_SUPER_MAGIC {
            return;
        }
        let v = Volume {
            name: "v".into(),
            path: d.path().to_owned(),
            provider: ProviderKind::Btrfs,
            snapshot_dir: d.path().to_owned(),
            keep_base: None,
            lvm: None,
        };
        let msg = BtrfsProvider::new(Arc::new(crate::sys::SystemRunner))
            .check(&v, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is not on btrfs"), "{msg}");
    }
}
