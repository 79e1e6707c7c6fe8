//! Host state under `state_dir`: the journal of undoable steps and the host
//! lock. Both survive the process, which is the point: they are how a
//! killed run is cleaned up.

pub mod bases;
pub mod journal;
pub mod lock;
pub mod metrics;
pub mod mounts;
pub mod status;

pub use bases::{is_current_base, Base, Bases, BasesError};
pub use journal::{Journal, JournalError, Key, Pending, Step};
pub use lock::{HostLock, LockError};
pub use status::{assess, Level, StatusBook, StatusError, StatusRow};

/// Creates the state dir (mode 0700) if needed.
pub(crate) fn ensure_dir(state_dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
}
