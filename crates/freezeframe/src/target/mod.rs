//! The plain tar target: one folder per run, atomic files, a manifest
//! written last. See `docs/FORMAT.md` for the layout.

pub mod layout;
pub mod manifest;
pub mod store;

pub use layout::RunId;
pub use manifest::{
    ContainerRecord, FileKind, FileRecord, FreezeWindow, Manifest, MountRecord, Outcome,
    SnapshotRecord,
};
pub use store::{RunListing, Store, StoreError};
