//! The [`SnapshotProvider`] contract.

use std::path::Path;

use crate::config::Volume;
use crate::snapshot::{snapshot_name, Snapshot, SnapshotError, SnapshotProvider};
use crate::sys::Owner;

/// A provider and a volume it can snapshot, to put through the contract.
pub struct SnapshotSubject<'a> {
    /// The provider under test.
    pub provider: &'a dyn SnapshotProvider,
    /// A mounted, writable volume of its kind; the suite writes one probe
    /// file at its root and removes it.
    pub volume: Volume,
    /// A state dir for the owner record.
    pub state_dir: &'a Path,
}

/// Removes the snapshot when dropped: a failing suite leaks nothing.
struct Remove<'a>(&'a dyn SnapshotProvider, Option<Snapshot>);

impl Drop for Remove<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.1.take() {
            let _ = self.0.remove(&s);
        }
    }
}

const PROBE: &str = "ff-contract-probe";

/// Runs the provider contract on `s`:
///
/// 1. the volume passes `check` and `prepare`; a fresh name is free;
/// 2. `create` takes a snapshot of the volume *as it was*: a change made
///    after it is not in it, and it cannot be written to;
/// 3. the name is then taken (`exists`, a second `create` fails) and
///    `list` finds it, provably ours, with its owner;
/// 4. a name not of freezeframe's form is refused before anything is made;
/// 5. `remove` removes it and its owner record, `list` forgets it, and
///    removing it again needs nothing.
pub fn snapshot_contract(s: &SnapshotSubject<'_>) {
    let p = s.provider;
    let kind = p.kind();
    let v = &s.volume;
    p.check(v, 1)
        .unwrap_or_else(|e| panic!("contract: {kind:?} accepts volume {}: {e}", v.name));
    let run = format!("29991231T{:06}", std::process::id() % 1_000_000);
    let name = snapshot_name(&run, &v.name, None);
    assert!(!p.exists(v, &name).unwrap(), "contract: {name} is free");
    let planned = p
        .handle(v, &name)
        .unwrap_or_else(|e| panic!("contract: {kind:?} names {name}: {e}"));
    assert_eq!(planned.name, name);

    // 2. A point-in-time, read-only copy.
    let probe = v.path.join(PROBE);
    std::fs::write(&probe, b"before").unwrap();
    p.prepare(v)
        .unwrap_or_else(|e| panic!("contract: {kind:?} prepares {}: {e}", v.name));
    let owner = Owner::me(s.state_dir, &run);
    let mut guard = Remove(p, Some(planned.clone()));
    let snap = p
        .create(v, &name, &owner)
        .unwrap_or_else(|e| panic!("contract: {kind:?} snapshots {}: {e}", v.name));
    guard.1 = Some(snap.clone());
    std::fs::write(&probe, b"after").unwrap();
    p.activate(&snap)
        .unwrap_or_else(|e| panic!("contract: {kind:?} activates {name}: {e}"));
    let seen = std::fs::read(snap.root.join(PROBE))
        .unwrap_or_else(|e| panic!("contract: the probe in {}: {e}", snap.root.display()));
    assert_eq!(
        seen, b"before",
        "contract: the snapshot holds the volume as it was"
    );
    assert!(
        std::fs::write(snap.root.join("ff-contract-write"), b"x").is_err(),
        "contract: {} is read-only",
        snap.root.display()
    );
    let h = p.health(&snap).unwrap();
    assert!(
        h.invalid.is_none(),
        "contract: a fresh snapshot is valid: {h:?}"
    );

    // 3. Taken, listed, ours.
    assert!(p.exists(v, &name).unwrap(), "contract: {name} is taken");
    assert!(
        p.create(v, &name, &owner).is_err(),
        "contract: a second create of {name} fails"
    );
    let found = p.list(v).unwrap();
    let f = found
        .iter()
        .find(|f| f.snapshot.name == name)
        .unwrap_or_else(|| panic!("contract: list finds {name}: {found:?}"));
    assert_eq!(f.foreign, None, "contract: {name} is provably ours");
    // Who made it, enough to tell whether that process lives (an LVM tag
    // holds no paths: the state dir and run are the btrfs record's extra).
    let who = |o: &Owner| (o.pid, o.started, o.boot.clone());
    assert_eq!(
        f.owner.as_ref().map(who),
        Some(who(&owner)),
        "contract: its maker is recorded"
    );

    // 4. Not our form: refused, nothing made.
    let foreign = format!("userdata-{run}");
    match p.create(v, &foreign, &owner) {
        Err(SnapshotError::NotOurs(_)) => {}
        other => panic!("contract: {kind:?} refuses the name {foreign}: {other:?}"),
    }
    assert!(!v.snapshot_dir.join(&foreign).exists());

    // 5. Removed, forgotten, idempotent.
    p.remove(&snap)
        .unwrap_or_else(|e| panic!("contract: {kind:?} removes {name}: {e}"));
    guard.1 = None;
    assert!(
        !p.exists(v, &name).unwrap(),
        "contract: {name} and its owner record are gone"
    );
    assert!(
        p.list(v).unwrap().iter().all(|f| f.snapshot.name != name),
        "contract: list forgets {name}"
    );
    p.remove(&snap)
        .unwrap_or_else(|e| panic!("contract: removing {name} again needs nothing: {e}"));
    std::fs::remove_file(&probe).unwrap();
}
