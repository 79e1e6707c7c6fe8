//! Container runtimes: how to freeze, thaw (and later checkpoint, stop,
//! start) a container. The engine only sees the [`Runtime`] trait.

pub mod cgroup;
pub mod copy;
pub mod lxc;
pub mod openvz;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{Container, ContainerSpec, Mode, RuntimeKind};
use crate::sys::CommandError;
use copy::{CopiedConfig, CopyPlan, CopyRequest};

pub use cgroup::CgroupRuntime;
pub use lxc::LxcRuntime;
pub use openvz::OpenvzRuntime;

/// What a runtime knows about a configured container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Its private area.
    pub private: PathBuf,
    /// Its config file.
    pub config: Option<PathBuf>,
    /// Whether it runs.
    pub running: bool,
}

/// A container as a runtime lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// Id (CTID, name).
    pub id: String,
    /// State as the runtime says it (`running`, `stopped`, `FROZEN`, …).
    pub state: String,
    /// Private area, if known.
    pub private: Option<PathBuf>,
}

/// How a container will be (or was) brought to rest for its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiesced {
    /// The mode actually used (a runtime may fall back, e.g. OpenVZ snapshot
    /// → checkpoint when no cgroup is exposed).
    pub mode: Mode,
    /// The memory dump a checkpoint writes, kept in the run.
    pub dump: Option<PathBuf>,
    /// Said to the operator (why a fallback happened).
    pub note: Option<String>,
}

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
    #[error("container {id}: not frozen within {} ms, its share of backup.freeze_timeout ({path} still says `{state}`); it was thawed again", timeout.as_millis())]
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
    /// A runtime tool failed or is missing.
    #[error("container {id}: {source}")]
    Command {
        /// Container id.
        id: String,
        /// The failed command.
        source: CommandError,
    },
    /// The runtime's own data is not what we expect.
    #[error("container {id}: {message}")]
    Invalid {
        /// Container id.
        id: String,
        /// What is wrong and what to do.
        message: String,
    },
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
    /// Every container the runtime knows (for `list-containers`).
    fn list(&self, configured: &[ContainerSpec]) -> Result<Vec<Listed>, RuntimeError>;
    /// Fills in what the config left out: private area, config file, state.
    fn resolve(&self, spec: &ContainerSpec) -> Result<Resolved, RuntimeError>;
    /// Checks that a running container can be brought to rest.
    fn check(&self, ct: &Container) -> Result<(), RuntimeError>;
    /// Decides how `ct` will be brought to rest in `mode` (before anything is
    /// journaled or done).
    fn plan_quiesce(&self, ct: &Container, mode: Mode) -> Result<Quiesced, RuntimeError>;
    /// Brings the container to rest; on any error it is left running.
    fn quiesce(&self, ct: &Container, q: &Quiesced, timeout: Duration) -> Result<(), RuntimeError>;
    /// Brings every container of `batch` to rest at once, each within
    /// `budget`: one that is not is left running and fails alone, the
    /// others stay at rest. Returns, per container in order, the instant
    /// it was seen at rest: taken after the runtime confirmed it, never
    /// before (a manifest's window starts there). The default runs
    /// [`Runtime::quiesce`] for each on a thread of its own.
    fn quiesce_all(
        &self,
        batch: &[(&Container, &Quiesced)],
        budget: Duration,
    ) -> Vec<Result<Instant, RuntimeError>> {
        quiesce_each(self, batch, budget)
    }
    /// Lets it run again. Resuming a running container is not an error.
    fn resume(&self, ct: &Container, q: &Quiesced) -> Result<(), RuntimeError>;
    /// A durable reference, written to the journal, from which
    /// [`Runtime::resume_handle`] resumes the container without the config.
    fn handle(&self, ct: &Container, q: &Quiesced) -> Result<String, RuntimeError>;
    /// Resumes what `handle` refers to; a container that no longer exists
    /// needs nothing.
    fn resume_handle(&self, handle: &str) -> Result<(), RuntimeError>;
    /// Brings container `id` back from a memory dump a checkpoint wrote
    /// (`restore --with-memory`); runtimes without checkpoints refuse.
    fn restore_memory(&self, id: &str, dump: &std::path::Path) -> Result<String, RuntimeError> {
        let _ = dump;
        Err(RuntimeError::Invalid {
            id: id.to_owned(),
            message: format!(
                "the {} runtime takes no memory checkpoints: restore the files only",
                self.kind()
            ),
        })
    }
    /// Where a copy restored under `req.new_id` goes (`restore --as`),
    /// decided before anything is written; refuses a new id the runtime
    /// already knows.
    fn plan_copy(&self, req: &CopyRequest) -> Result<CopyPlan, RuntimeError> {
        Err(no_copies(self.kind(), req.new_id.as_str()))
    }
    /// The copy's config, from the backup's (`archived`), once the tree is
    /// restored.
    fn copy_config(
        &self,
        req: &CopyRequest,
        archived: Option<&str>,
    ) -> Result<CopiedConfig, RuntimeError> {
        let _ = archived;
        Err(no_copies(self.kind(), req.new_id.as_str()))
    }
}

fn no_copies(kind: RuntimeKind, id: &str) -> RuntimeError {
    RuntimeError::Invalid {
        id: id.to_owned(),
        message: format!("the {kind} runtime cannot register a restored copy: restore with --to"),
    }
}

/// [`Runtime::quiesce`] for each container of `batch` at once, each on a
/// thread of its own within what is left of `budget` (the default of
/// [`Runtime::quiesce_all`], for runtimes whose commands block).
pub fn quiesce_each<R: Runtime + ?Sized>(
    rt: &R,
    batch: &[(&Container, &Quiesced)],
    budget: Duration,
) -> Vec<Result<Instant, RuntimeError>> {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let running: Vec<_> = batch
            .iter()
            .map(|(c, q)| {
                s.spawn(move || {
                    let left = budget.saturating_sub(t0.elapsed());
                    rt.quiesce(c, q, left).map(|()| Instant::now())
                })
            })
            .collect();
        running
            .into_iter()
            .zip(batch)
            .map(|(h, (c, _))| {
                h.join().unwrap_or_else(|_| {
                    Err(RuntimeError::Invalid {
                        id: c.id.to_string(),
                        message: "bringing it to rest panicked".into(),
                    })
                })
            })
            .collect()
    })
}
