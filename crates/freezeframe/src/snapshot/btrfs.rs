//! btrfs: read-only subvolume snapshots (`btrfs subvolume snapshot -r`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Health, Snapshot, SnapshotError, SnapshotProvider, SNAPSHOT_PREFIX};
use crate::config::{ProviderKind, Volume};
use crate::sys::fs::{fs_magic, syncfs, BTRFS_SUPER_MAGIC};
use crate::sys::{Cmd, CommandRunner};

/// Inode number of the root of every btrfs subvolume.
const BTRFS_SUBVOL_ROOT_INO: u64 = 256;

/// btrfs snapshot provider.
#[derive(Clone)]
pub struct BtrfsProvider {
    runner: Arc<dyn CommandRunner>,
}

impl BtrfsProvider {
    /// A provider running `btrfs` through `runner`.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self { runner }
    }

    /// The `btrfs` command creating a read-only snapshot of `source` at `dest`.
    pub fn snapshot_cmd(source: &Path, dest: &Path) -> Cmd {
        Cmd::new("btrfs")
            .arg("subvolume")
            .arg("snapshot")
            .arg("-r")
            .arg(source)
            .arg(dest)
    }

    /// The `btrfs` command deleting the subvolume at `path`.
    pub fn delete_cmd(path: &Path) -> Cmd {
        Cmd::new("btrfs")
            .arg("subvolume")
            .arg("delete")
            .arg("--commit-after")
            .arg(path)
    }

    fn snapshot_path(volume: &Volume, name: &str) -> PathBuf {
        volume.snapshot_dir.join(name)
    }

    fn unsuitable(volume: &Volume, path: &Path, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Unsuitable {
            volume: volume.name.clone(),
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    fn io(volume: &Volume, path: &Path, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io {
            volume: volume.name.clone(),
            path: path.to_owned(),
            source,
        }
    }
}

impl SnapshotProvider for BtrfsProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Btrfs
    }

    fn check(&self, volume: &Volume, _snapshots: usize) -> Result<(), SnapshotError> {
        let p = &volume.path;
        let magic = fs_magic(p).map_err(|e| Self::io(volume, p, e))?;
        if magic != BTRFS_SUPER_MAGIC {
            return Err(Self::unsuitable(
                volume,
                p,
                "is not on btrfs: the btrfs provider needs the volume path to be a btrfs subvolume \
                 (create one with `btrfs subvolume create`, or choose another provider)",
            ));
        }
        let ino = std::fs::metadata(p)
            .map_err(|e| Self::io(volume, p, e))?
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
                volume,
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
        Ok(())
    }

    fn prepare(&self, volume: &Volume) -> Result<(), SnapshotError> {
        syncfs(&volume.path).map_err(|e| Self::io(volume, &volume.path, e))
    }

    fn handle(&self, volume: &Volume, name: &str) -> Result<Snapshot, SnapshotError> {
        Ok(Snapshot {
            name: name.to_owned(),
            volume: volume.name.clone(),
            root: Self::snapshot_path(volume, name),
            device: None,
        })
    }

    fn create(&self, volume: &Volume, name: &str) -> Result<Snapshot, SnapshotError> {
        if !name.starts_with(SNAPSHOT_PREFIX) {
            return Err(SnapshotError::NotOurs(name.to_owned()));
        }
        let dest = Self::snapshot_path(volume, name);
        self.runner
            .run(&Self::snapshot_cmd(&volume.path, &dest))
            .map_err(|source| SnapshotError::Command {
                volume: volume.name.clone(),
                source,
            })?;
        self.handle(volume, name)
    }

    fn health(&self, _snap: &Snapshot) -> Result<Health, SnapshotError> {
        // btrfs snapshots share extents with the origin: they cannot overflow.
        Ok(Health::ok())
    }

    fn list(&self, volume: &Volume) -> Result<Vec<Snapshot>, SnapshotError> {
        let d = &volume.snapshot_dir;
        let rd = match std::fs::read_dir(d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(volume, d, e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let is_subvol = std::fs::symlink_metadata(e.path())
                .map(|m| m.is_dir() && m.ino() == BTRFS_SUBVOL_ROOT_INO)
                .unwrap_or(false);
            if name.starts_with(SNAPSHOT_PREFIX) && is_subvol {
                out.push(self.handle(volume, &name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove(&self, snap: &Snapshot) -> Result<(), SnapshotError> {
        let base = snap.root.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !base.starts_with(SNAPSHOT_PREFIX) || base != snap.name {
            return Err(SnapshotError::NotOurs(snap.root.display().to_string()));
        }
        if !snap.root.exists() {
            return Ok(());
        }
        self.runner
            .run(&Self::delete_cmd(&snap.root))
            .map(|_| ())
            .map_err(|source| SnapshotError::Command {
                volume: snap.volume.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_built_as_expected() {
        let c = BtrfsProvider::snapshot_cmd(Path::new("/srv/ct"), Path::new("/srv/.s/ff-1-data"));
        assert_eq!(
            c.to_string(),
            "btrfs subvolume snapshot -r /srv/ct /srv/.s/ff-1-data"
        );
        let d = BtrfsProvider::delete_cmd(Path::new("/srv/.s/ff-1-data"));
        assert_eq!(
            d.to_string(),
            "btrfs subvolume delete --commit-after /srv/.s/ff-1-data"
        );
    }

    #[test]
    fn refuses_to_remove_foreign_subvolumes() {
        let p = BtrfsProvider::new(Arc::new(crate::sys::SystemRunner));
        let s = Snapshot {
            name: "home".into(),
            volume: "v".into(),
            root: "/srv/home".into(),
            device: None,
        };
        assert!(matches!(p.remove(&s), Err(SnapshotError::NotOurs(_))));
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
            lvm: None,
        };
        let msg = BtrfsProvider::new(Arc::new(crate::sys::SystemRunner))
            .check(&v, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is not on btrfs"), "{msg}");
    }
}
