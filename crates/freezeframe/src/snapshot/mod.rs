//! Snapshot providers: make a read-only, point-in-time copy of a volume, say
//! whether it is still valid, and remove it.

pub mod btrfs;
pub mod lvm;
mod name;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{ProviderKind, Volume};
use crate::sys::send_stream::{uuid_text, FileChange, SendChanges};
use crate::sys::{CommandError, Owner};
use crate::target::SourceId;

pub use name::{candidates, is_snapshot_name, snapshot_name};

pub use btrfs::{send_changes, BtrfsProvider, ChangesError};
pub use lvm::LvmProvider;

/// Prefix of every snapshot freezeframe creates; nothing else is ever removed.
pub const SNAPSHOT_PREFIX: &str = "ff-";

/// A live snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Name (`ff-<run>-<volume>[-<container>]`).
    pub name: String,
    /// Volume it was taken of.
    pub volume: String,
    /// Where its read-only tree can be read; the volume's root maps here.
    pub root: PathBuf,
    /// The provider's device name, if it has one (LVM: `vg/lv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// What it must be a snapshot of to be removed (btrfs: the volume's
    /// subvolume UUID; LVM: the origin `vg/lv`). Recorded when the handle
    /// is made, so that a removal from the journal checks it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// A snapshot found on a volume by [`SnapshotProvider::list`]: named like
/// one of ours, with what is known about whether it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The process that made it, as recorded beside it (`None`: no record).
    pub owner: Option<Owner>,
    /// Why it is not provably a freezeframe snapshot of this volume (not
    /// read-only, a snapshot of something else, untagged); `None`: it is.
    pub foreign: Option<String>,
}

/// Whether a snapshot can still be trusted, and how full it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// Why it is no longer valid (e.g. an overflowed COW area), if it is not.
    pub invalid: Option<String>,
    /// How full its copy-on-write space is (LVM COW area or thin pool), %.
    pub used_percent: Option<f64>,
}

impl Health {
    /// Valid, usage unknown or irrelevant.
    pub fn ok() -> Self {
        Self::default()
    }
}

/// A snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The volume cannot be snapshotted by this provider.
    #[error("volume {volume}: {path} {reason}")]
    Unsuitable {
        /// Volume name.
        volume: String,
        /// The path at fault.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A command failed.
    #[error("volume {volume}: {source}")]
    Command {
        /// Volume name.
        volume: String,
        /// The failed command.
        source: CommandError,
    },
    /// The kernel did not make the snapshot.
    #[error("volume {volume}: cannot snapshot {} as {}: {source}", from.display(), to.display())]
    Create {
        /// Volume name.
        volume: String,
        /// What was to be snapshotted.
        from: PathBuf,
        /// Where the snapshot was to be.
        to: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file system call failed.
    #[error("volume {volume}: {path}: {source}")]
    Io {
        /// Volume name.
        volume: String,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// What changed between two snapshots could not be had.
    #[error("volume {volume}: {source}")]
    Changes {
        /// The volume.
        volume: String,
        /// Why.
        source: ChangesError,
    },
    /// `thin_delta`'s output could not be used.
    #[error("volume {volume}: {source}")]
    ThinDelta {
        /// The volume.
        volume: String,
        /// Why.
        source: lvm::DeltaError,
    },
    /// Refusing to touch something freezeframe did not create.
    #[error("refusing to remove `{0}`: not a freezeframe snapshot")]
    NotOurs(String),
    /// Another run took the name between the check and the creation.
    #[error(
        "snapshot name {0} was taken by another run at the same instant; run the backup again"
    )]
    Taken(String),
}

/// What changed from a base snapshot to a new one, per entry of the new
/// one, as the provider's kernel interface says (btrfs: `btrfs send
/// --no-data`; LVM-thin: `thin_delta` and `FIEMAP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeChanges {
    /// The base's identity ([`SourceId::uuid`]) the changes were read from.
    pub base_uuid: String,
    /// The new snapshot's identity.
    pub uuid: String,
    /// Every entry that may have changed, under its path in the new
    /// snapshot (relative to the volume's root). An entry not listed is
    /// either unchanged or read whole (never trusted).
    pub entries: BTreeMap<PathBuf, FileChange>,
    /// Files the provider could not map (they are read whole), a few.
    pub notes: Vec<String>,
}

impl From<SendChanges> for VolumeChanges {
    fn from(c: SendChanges) -> Self {
        Self {
            base_uuid: uuid_text(&c.base_uuid),
            uuid: uuid_text(&c.uuid),
            entries: c.entries,
            notes: Vec::new(),
        }
    }
}

/// Something held in the kernel while changes are read, released after
/// (LVM-thin: the pool's metadata snapshot). Journaled before it is
/// taken, so that a killed run's guardian or `recover` releases it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hold {
    /// The device-mapper name of the thin pool (`vg-pool-tpool`).
    pub pool: String,
}

/// How a volume is snapshotted.
pub trait SnapshotProvider: Send + Sync {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;
    /// Checks, before anything is frozen, that `volume` can be snapshotted
    /// `snapshots` times at once (free space, pool fill).
    fn check(&self, volume: &Volume, snapshots: usize) -> Result<(), SnapshotError>;
    /// Flushes the volume so the frozen window has little left to write.
    fn prepare(&self, volume: &Volume) -> Result<(), SnapshotError>;
    /// Whether something of this name is already on `volume` (a snapshot,
    /// or its owner record): the name is taken.
    fn exists(&self, volume: &Volume, name: &str) -> Result<bool, SnapshotError>;
    /// The handle a snapshot named `name` of `volume` will have, computed
    /// without creating it (so its removal can be registered first).
    fn handle(&self, volume: &Volume, name: &str) -> Result<Snapshot, SnapshotError>;
    /// Takes a read-only snapshot named `name` (see [`snapshot_name`]) and
    /// records `owner` beside it, before it exists, so that a sweep can
    /// tell whether its maker still runs.
    fn create(&self, volume: &Volume, name: &str, owner: &Owner)
        -> Result<Snapshot, SnapshotError>;
    /// Makes a created snapshot readable at its `root` (LVM: activate and
    /// mount read-only). Runs after the thaw, outside the freeze window.
    fn activate(&self, _snap: &Snapshot) -> Result<(), SnapshotError> {
        Ok(())
    }
    /// Grows the snapshot's copy-on-write space by `percent` of its size,
    /// where the provider can (LVM classic snapshots).
    fn extend(&self, snap: &Snapshot, _percent: f64) -> Result<(), SnapshotError> {
        Err(SnapshotError::NotOurs(format!(
            "{} cannot be extended",
            snap.name
        )))
    }
    /// Whether the snapshot is still valid.
    fn health(&self, snap: &Snapshot) -> Result<Health, SnapshotError>;
    /// Removes the snapshot (and its owner record). Refuses
    /// ([`SnapshotError::NotOurs`]) anything not provably a freezeframe
    /// snapshot of its origin; a snapshot already gone needs nothing.
    fn remove(&self, snap: &Snapshot) -> Result<(), SnapshotError>;
    /// The snapshot's identity, where the provider has one (btrfs: the
    /// subvolume UUID and generation), recorded with repository backups.
    fn identity(&self, _snap: &Snapshot) -> Result<Option<SourceId>, SnapshotError> {
        Ok(None)
    }
    /// What changed from the older snapshot `base` to `new` (both of the
    /// same volume), where the provider can say (btrfs: `btrfs send
    /// --no-data -p`), through a scratch file in `scratch`. `held` is
    /// called once while what [`SnapshotProvider::change_hold`] named is
    /// held (the engine's fault point there), never if nothing is.
    fn changes(
        &self,
        _base: &Snapshot,
        _new: &Snapshot,
        _scratch: &Path,
        _held: &dyn Fn(),
    ) -> Result<Option<VolumeChanges>, SnapshotError> {
        Ok(None)
    }
    /// What [`SnapshotProvider::changes`] of `base` and `new` will hold
    /// in the kernel while it runs (it releases it before it returns), to
    /// be journaled first; `None`: nothing.
    fn change_hold(
        &self,
        _base: &Snapshot,
        _new: &Snapshot,
    ) -> Result<Option<Hold>, SnapshotError> {
        Ok(None)
    }
    /// Releases `hold` if it is still held and no live freezeframe holds
    /// it (the undo of a run killed inside `changes`).
    fn release_hold(&self, _hold: &Hold) -> Result<(), SnapshotError> {
        Ok(())
    }
    /// Everything on `volume` named like a snapshot of it by freezeframe
    /// ([`is_snapshot_name`]), with its owner record and, if it is not
    /// provably ours, why (for the orphan sweep).
    fn list(&self, volume: &Volume) -> Result<Vec<Found>, SnapshotError>;
}
