//! A run's side of the extent-level incremental (DESIGN.md §7). Before a
//! snapshot's containers are archived: its identity (recorded with each
//! backup), and what the kernel says changed since the base the last run
//! kept. Once all its containers are saved, the snapshot becomes the base
//! in their place: taken off the journal, recorded, and only then is the
//! old base removed. A crash between two steps leaves one current base and
//! at most one snapshot no record names, which the next sweep removes.

use std::path::Path;
use std::sync::Arc;

use super::cleanup::{Cleanup, Token};
use super::lifecycle::Run;
use crate::config::Volume;
use crate::snapshot::{Snapshot, SnapshotProvider};
use crate::state::{Base, Bases};
use crate::sys::send_stream::SendChanges;
use crate::sys::{Cancel, Faults};
use crate::target::{KernelChanges, SourceId};

/// What the containers of one snapshot are backed up with.
#[derive(Debug, Default)]
pub(super) struct Incremental {
    /// The snapshot's identity.
    pub source_id: Option<SourceId>,
    /// The base's identity and the kernel's changes since it.
    pub changes: Option<(SourceId, SendChanges)>,
}

impl Incremental {
    /// The changes below one container's root `rel` (relative to the
    /// volume), keyed by path below that root.
    pub(super) fn for_container(&self, rel: &Path) -> Option<KernelChanges> {
        let (base, c) = self.changes.as_ref()?;
        let files = c
            .entries
            .iter()
            .filter_map(|(p, f)| {
                let below = p.strip_prefix(rel).ok()?;
                let mut f = f.clone();
                f.origin = f
                    .origin
                    .as_deref()
                    .and_then(|o| o.strip_prefix(rel).ok())
                    .map(Path::to_path_buf);
                Some((below.to_path_buf(), f))
            })
            .collect();
        Some(KernelChanges {
            base: base.clone(),
            files,
        })
    }
}

/// The identity of `snap`, and the changes since `base` when the base is
/// still the snapshot that was kept (same identity). Each reason not to
/// use them goes to `notes`.
pub(super) fn incremental(
    provider: &dyn SnapshotProvider,
    snap: &Snapshot,
    base: Option<&Base>,
    scratch: &Path,
    notes: &mut Vec<String>,
) -> Incremental {
    let mut out = Incremental::default();
    match provider.identity(snap) {
        Ok(id) => out.source_id = id,
        Err(e) => notes.push(format!(
            "snapshot {}: no identity ({e}); it cannot become a base",
            snap.name
        )),
    }
    let (Some(base), Some(new_id)) = (base, &out.source_id) else {
        return out;
    };
    let unusable = |why: String| {
        format!(
            "base snapshot {} of volume {} not used ({why}): changed files are read whole",
            base.snapshot.name, snap.volume
        )
    };
    match provider.identity(&base.snapshot) {
        Ok(Some(id)) if id == base.id => {}
        Ok(Some(id)) => {
            notes.push(unusable(format!(
                "it changed since it was kept: {} now, {} then",
                id.text(),
                base.id.text()
            )));
            return out;
        }
        Ok(None) => return out,
        Err(e) => {
            notes.push(unusable(e.to_string()));
            return out;
        }
    }
    match provider.changes(&base.snapshot, snap, scratch) {
        Ok(Some(c))
            if crate::sys::send_stream::uuid_text(&c.base_uuid) == base.id.uuid
                && crate::sys::send_stream::uuid_text(&c.uuid) == new_id.uuid =>
        {
            out.changes = Some((base.id.clone(), c));
        }
        Ok(Some(_)) => notes.push(unusable(
            "the kernel's stream names other subvolumes than asked".into(),
        )),
        Ok(None) => {}
        Err(e) => notes.push(unusable(e.to_string())),
    }
    out
}

/// Everything keeping a base needs.
pub(super) struct Keeper<'a> {
    pub provider: &'a dyn SnapshotProvider,
    pub cleanup: &'a Cleanup,
    pub faults: &'a Faults,
    pub cancel: &'a Cancel,
    pub state_dir: &'a Path,
}

impl Keeper<'_> {
    /// Makes `new` (registered for removal under `token`) the base under
    /// `key` in `bases`, then removes the base it replaces. Problems go to
    /// `notes`; a snapshot that could not be recorded is removed.
    pub(super) fn keep(
        &self,
        bases: &mut Bases,
        key: &str,
        new: Base,
        token: Token,
        notes: &mut Vec<String>,
    ) {
        self.cleanup.done(token);
        self.faults.hit("before-base-swap", self.cancel);
        let old = bases.bases.insert(key.to_owned(), new.clone());
        if let Err(e) = bases.save(self.state_dir) {
            notes.push(format!(
                "snapshot {} not kept as a base: {e}",
                new.snapshot.name
            ));
            match old {
                Some(o) => bases.bases.insert(key.to_owned(), o),
                None => bases.bases.remove(key),
            };
            if let Err(e) = self.provider.remove(&new.snapshot) {
                notes.push(format!("snapshot {} not removed: {e}", new.snapshot.name));
            }
            return;
        }
        self.faults.hit("after-base-swap", self.cancel);
        if let Some(o) = old.filter(|o| o.snapshot != new.snapshot) {
            if let Err(e) = self.provider.remove(&o.snapshot) {
                notes.push(format!(
                    "old base snapshot {} not removed ({e}); the next recover removes it",
                    o.snapshot.name
                ));
            }
        }
    }

    /// Removes the bases of `volume` in `bases` (its runs keep none now).
    pub(super) fn drop_all(&self, bases: &mut Bases, volume: &str, notes: &mut Vec<String>) {
        let keys: Vec<String> = bases
            .bases
            .keys()
            .filter(|k| *k == volume || k.starts_with(&format!("{volume}/")))
            .cloned()
            .collect();
        if keys.is_empty() {
            return;
        }
        let gone: Vec<Base> = keys.iter().filter_map(|k| bases.bases.remove(k)).collect();
        if let Err(e) = bases.save(self.state_dir) {
            notes.push(format!("base snapshots of volume {volume} kept: {e}"));
            return;
        }
        for b in gone {
            if let Err(e) = self.provider.remove(&b.snapshot) {
                notes.push(format!(
                    "base snapshot {} not removed: {e}",
                    b.snapshot.name
                ));
            }
        }
    }
}

impl Run<'_> {
    /// Adds `note` to container `id`'s record.
    pub(super) fn add_note(&mut self, id: &str, note: &str) {
        let r = self.record(id);
        r.note = Some(match r.note.take() {
            Some(n) => format!("{n}; {note}"),
            None => note.to_owned(),
        });
    }

    /// What the containers of `snap` are backed up with, when runs keep
    /// bases of `vol` (why the base is not used goes to `notes`); runs
    /// that keep none drop the bases left.
    pub(super) fn incremental(
        &mut self,
        vol: &Volume,
        snap: &Snapshot,
        key: &str,
        provider: &dyn SnapshotProvider,
        notes: &mut Vec<String>,
    ) -> Option<Arc<Incremental>> {
        let state_dir = self.plan.state_dir.clone()?;
        if !self.plan.keeps_base(vol) {
            let mut bases = std::mem::take(&mut self.bases);
            let mut notes = Vec::new();
            self.keeper(provider, &state_dir)
                .drop_all(&mut bases, &vol.name, &mut notes);
            self.bases = bases;
            self.warnings.extend(notes);
            return None;
        }
        let base = self.bases.bases.get(key);
        Some(Arc::new(incremental(
            provider, snap, base, &state_dir, notes,
        )))
    }

    fn keeper<'p>(&'p self, provider: &'p dyn SnapshotProvider, state_dir: &'p Path) -> Keeper<'p> {
        Keeper {
            provider,
            cleanup: &self.cleanup,
            faults: &self.tools.faults,
            cancel: &self.tools.cancel,
            state_dir,
        }
    }

    /// `base`, registered for removal under `token`, becomes the base
    /// under `key`.
    pub(super) fn keep_base(&mut self, key: &str, base: Base, token: Token) {
        let (Some(state_dir), Some(provider)) = (
            self.plan.state_dir.clone(),
            self.tools.provider(base.provider).cloned(),
        ) else {
            return;
        };
        let mut bases = std::mem::take(&mut self.bases);
        let mut notes = Vec::new();
        self.keeper(&*provider, &state_dir)
            .keep(&mut bases, key, base, token, &mut notes);
        self.bases = bases;
        self.warnings.extend(notes);
    }
}
