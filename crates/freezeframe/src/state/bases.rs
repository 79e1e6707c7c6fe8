//! Base snapshots kept on purpose (DESIGN.md §7): per volume (and per
//! container when each container gets its own snapshot), the read-only
//! snapshot the last run read from, so that the next run can ask the
//! kernel what changed since. The record is `<state_dir>/bases.json`,
//! replaced atomically. A snapshot it names is the *current* base: no
//! sweep removes it, whichever state dir's sweep it is. A base snapshot no
//! record names any more is stale: its maker is gone, and the sweep
//! removes it like any abandoned snapshot.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ProviderKind;
use crate::snapshot::Snapshot;
use crate::sys::atomic;
use crate::target::SourceId;

/// The record's file name in the state dir.
pub const BASES_NAME: &str = "bases.json";
/// The largest record read (a few hundred bytes per base).
const MAX_BYTES: u64 = 4 << 20;

/// One kept base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Its provider.
    pub provider: ProviderKind,
    /// Its identity when it was kept.
    pub id: SourceId,
    /// The run that read it.
    pub run: String,
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BasesError {
    /// Reading or writing it failed.
    #[error("base snapshot record {}: {source}", path.display())]
    Io {
        /// The record.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// It is not a record this version reads.
    #[error("base snapshot record {}: {message}; remove it to start again from full reads", path.display())]
    Damaged {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The bases of one state dir, by key ([`Bases::key`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bases {
    /// Format version.
    pub version: u32,
    /// The bases.
    pub bases: BTreeMap<String, Base>,
}

impl Bases {
    /// The key of the base of `volume`, for `container` when each
    /// container gets a snapshot of its own.
    pub fn key(volume: &str, container: Option<&str>) -> String {
        match container {
            Some(c) => format!("{volume}/{c}"),
            None => volume.to_owned(),
        }
    }

    /// A key's volume and, for a per-container base, its container.
    pub fn split_key(key: &str) -> (&str, Option<&str>) {
        match key.split_once('/') {
            Some((v, c)) => (v, Some(c)),
            None => (key, None),
        }
    }

    /// The keys of the bases of `volume` (per volume or per container).
    pub fn keys_of_volume(&self, volume: &str) -> Vec<String> {
        self.bases
            .keys()
            .filter(|k| Self::split_key(k).0 == volume)
            .cloned()
            .collect()
    }

    /// The record in `state_dir` (empty when there is none).
    pub fn load(state_dir: &Path) -> Result<Self, BasesError> {
        let path = state_dir.join(BASES_NAME);
        let bytes = match crate::sys::fs::read_regular(&path, MAX_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(BasesError::Io { path, source }),
        };
        let b: Self = serde_json::from_slice(&bytes).map_err(|e| BasesError::Damaged {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if b.version != 1 {
            return Err(BasesError::Damaged {
                path,
                message: format!("version {}, this freezeframe reads 1", b.version),
            });
        }
        Ok(b)
    }

    /// Writes the record to `state_dir`, replacing the old one atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), BasesError> {
        let path = state_dir.join(BASES_NAME);
        let mut me = self.clone();
        me.version = 1;
        let json = serde_json::to_vec_pretty(&me).map_err(|e| BasesError::Damaged {
            path: path.clone(),
            message: e.to_string(),
        })?;
        atomic::replace(&path, &json).map_err(|source| BasesError::Io { path, source })
    }

    /// Whether `snap` is a current base here.
    pub fn holds(&self, snap: &Snapshot) -> bool {
        self.bases
            .values()
            .any(|b| b.snapshot.name == snap.name && b.snapshot.root == snap.root)
    }
}

/// Whether `snap` is a current base of the state dir `state_dir` (the
/// one its owner record names). An unreadable record counts as holding
/// it: better a stale base kept than a current one removed.
pub fn is_current_base(state_dir: &Path, snap: &Snapshot) -> bool {
    // No state dir known (an LVM snapshot of an older freezeframe): it was
    // never a base.
    if state_dir.as_os_str().is_empty() {
        return false;
    }
    Bases::load(state_dir).map_or(true, |b| b.holds(snap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(name: &str) -> Base {
        Base {
            snapshot: Snapshot {
                name: name.into(),
                volume: "v".into(),
                root: PathBuf::from("/s").join(name),
                device: None,
                origin: Some("u".into()),
            },
            provider: ProviderKind::Btrfs,
            id: SourceId {
                uuid: "u1".into(),
                generation: 7,
            },
            run: "r".into(),
        }
    }

    #[test]
    fn a_record_round_trips_and_names_its_bases() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Bases::load(d.path()).unwrap(), Bases::default());
        let mut b = Bases::default();
        b.bases.insert(Bases::key("v", None), base("ff-1-v"));
        b.save(d.path()).unwrap();
        let back = Bases::load(d.path()).unwrap();
        assert!(back.holds(&base("ff-1-v").snapshot));
        assert!(!back.holds(&base("ff-2-v").snapshot));
        assert!(is_current_base(d.path(), &base("ff-1-v").snapshot));
        assert!(!is_current_base(d.path(), &base("ff-2-v").snapshot));
    }

    #[test]
    fn a_damaged_record_is_an_error_and_keeps_everything() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(BASES_NAME), b"{not json").unwrap();
        assert!(matches!(
            Bases::load(d.path()),
            Err(BasesError::Damaged { .. })
        ));
        assert!(is_current_base(d.path(), &base("anything").snapshot));
        std::fs::write(d.path().join(BASES_NAME), br#"{"version": 9, "bases": {}}"#).unwrap();
        assert!(matches!(
            Bases::load(d.path()),
            Err(BasesError::Damaged { .. })
        ));
    }
}
