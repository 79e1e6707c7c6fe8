//! A run's side of the extent-level incremental (DESIGN.md §7). Before a
//! snapshot's containers are archived: its identity (recorded with each
//! backup), and what the kernel says changed since the base the last run
//! kept. Once all its containers are saved, the snapshot becomes the base
//! in their place: taken off the journal, recorded, and only then is the
//! old base removed. A crash between two steps leaves one current base and
//! at most one snapshot no record names, which the next sweep removes.

use std::path::Path;
use std::sync::Arc;

use super::cleanup::{Cleanup, Token, Undo};
use super::lifecycle::Run;
use super::Toolbox;
use crate::config::Volume;
use crate::snapshot::VolumeChanges;
use crate::snapshot::{Snapshot, SnapshotError, SnapshotProvider};
use crate::state::{Base, Bases, BasesError};
use crate::target::{KernelChanges, SourceId};

/// What the containers of one snapshot are backed up with.
#[derive(Debug, Default)]
pub(super) struct Incremental {
    /// The snapshot's identity.
    pub source_id: Option<SourceId>,
    /// The base's identity and the kernel's changes since it.
    pub changes: Option<(SourceId, VolumeChanges)>,
}

impl Incremental {
    /// The changes below one container's root `rel` (relative to the
    /// volume), keyed by path below that root.
    pub(super) fn for_container(&self, rel: &Path) -> Option<KernelChanges> {
        let (base, c) = self.changes.as_ref()?;
        // The entries below `rel` are one run of the sorted map.
        let files = c
            .entries
            .range(rel.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(rel))
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
/// still the snapshot that was kept (same identity). Whatever the
/// provider holds in the kernel while it reads them is registered with
/// `cleanup` first, and `held` is called while it is held. Each reason
/// not to use them goes to `notes`.
pub(super) fn incremental(
    provider: &Arc<dyn SnapshotProvider>,
    snap: &Snapshot,
    base: Option<&Base>,
    scratch: &Path,
    cleanup: &Cleanup,
    held: &dyn Fn(),
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
    let token = match provider.change_hold(&base.snapshot, snap) {
        Ok(None) => None,
        Ok(Some(hold)) => {
            match cleanup.register_all(vec![Undo::ReleaseHold(provider.clone(), hold)]) {
                Ok(t) => t.first().copied(),
                Err(e) => {
                    notes.push(unusable(format!("cannot journal the pool's hold: {e}")));
                    return out;
                }
            }
        }
        Err(e) => {
            notes.push(unusable(e.to_string()));
            return out;
        }
    };
    let changes = provider.changes(&base.snapshot, snap, scratch, held);
    // `changes` released what it held, on every path.
    if let Some(t) = token {
        cleanup.done(t);
    }
    match changes {
        Ok(Some(c)) if c.base_uuid == base.id.uuid && c.uuid == new_id.uuid => {
            notes.extend(c.notes.iter().cloned());
            out.changes = Some((base.id.clone(), c));
        }
        Ok(Some(_)) => notes.push(unusable(
            "the kernel's changes name other snapshots than asked".into(),
        )),
        Ok(None) => {}
        Err(e) => notes.push(unusable(e.to_string())),
    }
    out
}

/// A base forgotten, and what removing its snapshot gave (`None`: no
/// such provider here).
pub(super) type Forgotten = (Base, Option<Result<(), SnapshotError>>);

/// Takes the bases under `keys` out of `bases` and saves the record;
/// only then removes their snapshots, each through its provider. If the
/// record cannot be saved, the bases stay as they were and nothing is
/// removed.
pub(super) fn forget_bases(
    bases: &mut Bases,
    keys: &[String],
    state_dir: &Path,
    tools: &Toolbox,
) -> Result<Vec<Forgotten>, BasesError> {
    let gone: Vec<(String, Base)> = keys
        .iter()
        .filter_map(|k| bases.bases.remove(k).map(|b| (k.clone(), b)))
        .collect();
    if let Err(e) = bases.save(state_dir) {
        bases.bases.extend(gone);
        return Err(e);
    }
    Ok(gone
        .into_iter()
        .map(|(_, b)| {
            let removed = tools.provider(b.provider).map(|p| p.remove(&b.snapshot));
            (b, removed)
        })
        .collect())
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
        provider: &Arc<dyn SnapshotProvider>,
        notes: &mut Vec<String>,
    ) -> Option<Arc<Incremental>> {
        let state_dir = self.plan.state_dir.clone()?;
        if !self.plan.keeps_base(vol) {
            self.drop_bases_of(&vol.name, &state_dir);
            return None;
        }
        let base = self.bases.bases.get(key);
        let tools = self.tools;
        Some(Arc::new(incremental(
            provider,
            snap,
            base,
            &state_dir,
            &self.cleanup,
            &|| tools.faults.hit("while-holding", &tools.cancel),
            notes,
        )))
    }

    /// Removes the bases of `volume` (its runs keep none now).
    fn drop_bases_of(&mut self, volume: &str, state_dir: &Path) {
        let keys = self.bases.keys_of_volume(volume);
        if keys.is_empty() {
            return;
        }
        match forget_bases(&mut self.bases, &keys, state_dir, self.tools) {
            Err(e) => self
                .warnings
                .push(format!("base snapshots of volume {volume} kept: {e}")),
            Ok(gone) => {
                for (b, removed) in gone {
                    if let Some(Err(e)) = removed {
                        self.warnings.push(format!(
                            "base snapshot {} not removed: {e}",
                            b.snapshot.name
                        ));
                    }
                }
            }
        }
    }

    /// Makes `new` (registered for removal under `token`) the base under
    /// `key`, then removes the base it replaces. A snapshot that could
    /// not be recorded is removed.
    pub(super) fn keep_base(&mut self, key: &str, new: Base, token: Token) {
        let tools = self.tools;
        let (Some(state_dir), Some(provider)) =
            (self.plan.state_dir.clone(), tools.provider(new.provider))
        else {
            return;
        };
        self.cleanup.done(token);
        tools.faults.hit("before-base-swap", &tools.cancel);
        let old = self.bases.bases.insert(key.to_owned(), new.clone());
        if let Err(e) = self.bases.save(&state_dir) {
            self.warnings.push(format!(
                "snapshot {} not kept as a base: {e}",
                new.snapshot.name
            ));
            match old {
                Some(o) => self.bases.bases.insert(key.to_owned(), o),
                None => self.bases.bases.remove(key),
            };
            if let Err(e) = provider.remove(&new.snapshot) {
                self.warnings
                    .push(format!("snapshot {} not removed: {e}", new.snapshot.name));
            }
            return;
        }
        tools.faults.hit("after-base-swap", &tools.cancel);
        if let Some(o) = old.filter(|o| o.snapshot != new.snapshot) {
            if let Err(e) = provider.remove(&o.snapshot) {
                self.warnings.push(format!(
                    "old base snapshot {} not removed ({e}); the next recover removes it",
                    o.snapshot.name
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::config::ProviderKind;
    use crate::snapshot::{Found, Health, Hold};
    use crate::state::{Journal, Step};
    use crate::sys::send_stream::FileChange;
    use crate::sys::Owner;

    #[test]
    fn a_container_gets_the_entries_below_its_root_with_origins_below_it() {
        let moved_in = FileChange {
            origin: Some("other/m".into()),
            ..FileChange::default()
        };
        let here = FileChange {
            origin: Some("a/z/w".into()),
            ..FileChange::default()
        };
        let entries: BTreeMap<PathBuf, FileChange> = [
            ("a", FileChange::default()),
            ("a/x", FileChange::default()),
            ("a-b/y", FileChange::default()),
            ("a/z/w", here),
            ("a/m", moved_in),
            ("b", FileChange::default()),
        ]
        .into_iter()
        .map(|(p, f)| (PathBuf::from(p), f))
        .collect();
        let id = SourceId {
            uuid: "u".into(),
            generation: 1,
        };
        let changes = VolumeChanges {
            uuid: "new".into(),
            base_uuid: "u".into(),
            entries,
            notes: Vec::new(),
        };
        let inc = Incremental {
            source_id: None,
            changes: Some((id, changes)),
        };
        let k = inc.for_container(Path::new("a")).unwrap();
        let got: Vec<&str> = k.files.keys().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(got, ["", "m", "x", "z/w"]);
        assert_eq!(
            k.files[Path::new("z/w")].origin.as_deref(),
            Some(Path::new("z/w"))
        );
        assert_eq!(
            k.files[Path::new("m")].origin,
            None,
            "moved in from outside"
        );
        let all = inc.for_container(Path::new("")).unwrap();
        assert_eq!(all.files.len(), 6);
    }

    /// A provider that holds something while it reads changes, and
    /// records what it was asked to release.
    #[derive(Default)]
    struct Holding {
        released: std::sync::Mutex<Vec<Hold>>,
    }

    const POOL: &str = "vg-pool-tpool";

    impl SnapshotProvider for Holding {
        fn kind(&self) -> ProviderKind {
            ProviderKind::LvmThin
        }
        fn check(&self, _: &Volume, _: usize) -> Result<(), SnapshotError> {
            Ok(())
        }
        fn prepare(&self, _: &Volume) -> Result<(), SnapshotError> {
            Ok(())
        }
        fn exists(&self, _: &Volume, _: &str) -> Result<bool, SnapshotError> {
            Ok(true)
        }
        fn handle(&self, _: &Volume, name: &str) -> Result<Snapshot, SnapshotError> {
            Ok(snapshot(name))
        }
        fn create(&self, _: &Volume, name: &str, _: &Owner) -> Result<Snapshot, SnapshotError> {
            Ok(snapshot(name))
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
        fn identity(&self, s: &Snapshot) -> Result<Option<SourceId>, SnapshotError> {
            Ok(Some(source_id(&s.name)))
        }
        fn change_hold(&self, _: &Snapshot, _: &Snapshot) -> Result<Option<Hold>, SnapshotError> {
            Ok(Some(Hold { pool: POOL.into() }))
        }
        fn changes(
            &self,
            base: &Snapshot,
            new: &Snapshot,
            _: &Path,
            held: &dyn Fn(),
        ) -> Result<Option<VolumeChanges>, SnapshotError> {
            held();
            Ok(Some(VolumeChanges {
                base_uuid: base.name.clone(),
                uuid: new.name.clone(),
                entries: BTreeMap::new(),
                notes: Vec::new(),
            }))
        }
        fn release_hold(&self, hold: &Hold) -> Result<(), SnapshotError> {
            self.released.lock().unwrap().push(hold.clone());
            Ok(())
        }
    }

    fn snapshot(name: &str) -> Snapshot {
        Snapshot {
            name: name.into(),
            volume: "thin".into(),
            root: PathBuf::from("/nonexistent").join(name),
            device: None,
            origin: None,
        }
    }

    fn source_id(name: &str) -> SourceId {
        SourceId {
            uuid: name.into(),
            generation: 7,
        }
    }

    fn pending_holds(journal: &Path) -> Vec<Hold> {
        let (pending, bad) = Journal::pending(journal).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        pending
            .into_iter()
            .filter_map(|p| match p.step {
                Step::Hold { hold, .. } => Some(hold),
                _ => None,
            })
            .collect()
    }

    /// The hold is journaled before it is taken and marked done after:
    /// a run killed inside `held` leaves it for `recover`, which releases
    /// it through its provider.
    #[test]
    fn a_providers_hold_is_journaled_while_it_is_held_and_recover_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(dir.path(), "run").unwrap());
        let path = journal.path().to_owned();
        let cleanup = Cleanup::new(Some(journal));
        let holding = Arc::new(Holding::default());
        let provider: Arc<dyn SnapshotProvider> = holding.clone();
        let base = Base {
            snapshot: snapshot("ff-old-thin"),
            provider: ProviderKind::LvmThin,
            id: source_id("ff-old-thin"),
            run: "old".into(),
        };
        let seen = std::sync::Mutex::new(Vec::new());
        let held = || seen.lock().unwrap().push(pending_holds(&path));
        let mut notes = Vec::new();
        let new = snapshot("ff-new-thin");
        let out = incremental(
            &provider,
            &new,
            Some(&base),
            dir.path(),
            &cleanup,
            &held,
            &mut notes,
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert!(out.changes.is_some(), "the changes were used");
        assert_eq!(
            *seen.lock().unwrap(),
            [vec![Hold { pool: POOL.into() }]],
            "journaled while held"
        );
        assert!(pending_holds(&path).is_empty(), "done once released");
        assert!(holding.released.lock().unwrap().is_empty());

        let step = Step::Hold {
            provider: ProviderKind::LvmThin,
            hold: Hold { pool: POOL.into() },
        };
        let tools = Toolbox::new(
            Vec::new(),
            vec![provider],
            Arc::new(crate::sys::SystemClock::new()),
            "host".into(),
        );
        let said = crate::engine::recover::undo_step(&step, &tools).unwrap();
        assert!(said.contains(POOL), "{said}");
        assert_eq!(
            *holding.released.lock().unwrap(),
            [Hold { pool: POOL.into() }]
        );
    }
}
