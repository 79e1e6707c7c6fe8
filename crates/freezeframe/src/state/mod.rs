//! Host state under `state_dir`: the journal of undoable steps and the host
//! lock. Both survive the process, which is the point: they are how a
//! killed run is cleaned up.

pub mod journal;
pub mod lock;

pub use journal::{Journal, JournalError, Key, Pending, Step};
pub use lock::{HostLock, LockError};
