//! Container runtimes: how to freeze, thaw (and later checkpoint, stop,
//! start) a container. The engine only sees the [`Runtime`] trait.

pub mod cgroup;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Container, Mode, RuntimeKind};

pub use cgroup::CgroupRuntime;

/// A runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container's cgroup does not exist.
    #[error("container {id}: cgroup `{cgroup}` not found under {searched} (is the container running? check `cgroup` in its config)")]
    NotFound {
        /// Container id.
        id: String,
        /// The configured cgroup path.
        cgroup: PathBuf,
        /// The roots searched.
        searched: String,
    },
    /// Reading or writing a cgroup file failed.
    #[error("container {id}: {op} {path}: {source}")]
    Io {
        /// Container id.
        id: String,
        /// What was attempted (`write`, `read`).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The freezer did not report frozen in time; the freeze was undone.
    #[error("container {id}: not frozen within the freeze timeout of {timeout:?} ({path} still says `{state}`); it was thawed again")]
    FreezeTimeout {
        /// Container id.
        id: String,
        /// The timeout that passed.
        timeout: Duration,
        /// The state file watched.
        path: PathBuf,
        /// Last state read.
        state: String,
    },
    /// A journaled handle this runtime cannot read.
    #[error("unrecognised runtime handle `{0}` in the journal")]
    BadHandle(String),
    /// The runtime cannot do this mode.
    #[error("mode `{mode}` is not supported by the {runtime} runtime (container {id}); use --mode snapshot")]
    Unsupported {
        /// Container id.
        id: String,
        /// The runtime.
        runtime: RuntimeKind,
        /// The mode asked for.
        mode: Mode,
    },
}

/// How a container runtime is driven.
pub trait Runtime: Send + Sync {
    /// Which runtime this is.
    fn kind(&self) -> RuntimeKind;
    /// Whether the runtime can take backups in `mode`.
    fn supports(&self, mode: Mode) -> bool;
    /// Checks that the container exists and can be frozen.
    fn check(&self, ct: &Container) -> Result<(), RuntimeError>;
    /// Freezes every process of the container; on any error the container is
    /// left thawed.
    fn freeze(&self, ct: &Container, timeout: Duration) -> Result<(), RuntimeError>;
    /// Thaws the container. Thawing a running container is not an error.
    fn thaw(&self, ct: &Container) -> Result<(), RuntimeError>;
    /// Whether the container is frozen now.
    fn is_frozen(&self, ct: &Container) -> Result<bool, RuntimeError>;
    /// A durable reference to the container's freezer, written to the
    /// journal so it can be thawed without the config.
    fn handle(&self, ct: &Container) -> Result<String, RuntimeError>;
    /// Thaws what `handle` refers to; a container that no longer exists
    /// needs no thaw.
    fn thaw_handle(&self, handle: &str) -> Result<(), RuntimeError>;
}
