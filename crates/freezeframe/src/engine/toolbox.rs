//! The side-effecting parts the engine drives, bundled: runtimes, snapshot
//! providers, the clock, hooks, the guardian (watchdog), cancellation and
//! fault injection. Tests build one from fakes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{ProviderKind, RuntimeKind};
use crate::runtime::Runtime;
use crate::snapshot::SnapshotProvider;
use crate::sys::{Cancel, Clock, Faults, Hooks, NoHooks};

/// The watchdog could not be told a window opens: nothing may be frozen.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// It does not listen any more (it died, or its pipe broke).
    #[error("the guardian is not listening: {0}")]
    Gone(#[source] std::io::Error),
    /// It was already told the run ended.
    #[error("the guardian was already told the run ended")]
    Finished,
}

/// Watches freeze windows from outside the process (the guardian): if the
/// process dies or a window overruns, it thaws.
pub trait Watchdog: Send + Sync {
    /// A freeze window opens; everything must be thawed by `deadline`
    /// (wall clock: the guardian is another process).
    fn window_open(&self, deadline: SystemTime) -> Result<(), WatchdogError>;
    /// The window closed (everything thawed).
    fn window_closed(&self);
}

/// No watchdog (tests with fakes, dry runs).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWatchdog;
impl Watchdog for NoWatchdog {
    fn window_open(&self, _: SystemTime) -> Result<(), WatchdogError> {
        Ok(())
    }
    fn window_closed(&self) {}
}

/// Everything with side effects the engine needs.
#[derive(Clone)]
pub struct Toolbox {
    /// Runtimes by kind.
    pub runtimes: Vec<Arc<dyn Runtime>>,
    /// Snapshot providers by kind.
    pub providers: Vec<Arc<dyn SnapshotProvider>>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// This host's name (recorded in run ids and manifests).
    pub host: String,
    /// Hook runner.
    pub hooks: Arc<dyn Hooks>,
    /// The guardian.
    pub watchdog: Arc<dyn Watchdog>,
    /// Set by signal handlers.
    pub cancel: Cancel,
    /// Fault injection (testing aid).
    pub faults: Faults,
    /// The mount table (mountinfo format) mounts inside private areas are
    /// looked up in.
    pub mountinfo: PathBuf,
    /// Where sysfs is mounted (block devices are looked up below it).
    pub sysfs: PathBuf,
}

impl Toolbox {
    /// A toolbox with no hooks, no watchdog, no faults.
    pub fn new(
        runtimes: Vec<Arc<dyn Runtime>>,
        providers: Vec<Arc<dyn SnapshotProvider>>,
        clock: Arc<dyn Clock>,
        host: String,
    ) -> Self {
        Self {
            runtimes,
            providers,
            clock,
            host,
            hooks: Arc::new(NoHooks),
            watchdog: Arc::new(NoWatchdog),
            cancel: Cancel::new(),
            faults: Faults::none(),
            mountinfo: PathBuf::from(crate::sys::mountinfo::SELF_MOUNTINFO),
            sysfs: PathBuf::from("/sys"),
        }
    }

    /// The runtime of `kind`.
    pub fn runtime(&self, kind: RuntimeKind) -> Option<&Arc<dyn Runtime>> {
        self.runtimes.iter().find(|r| r.kind() == kind)
    }

    /// The snapshot provider of `kind`.
    pub fn provider(&self, kind: ProviderKind) -> Option<&Arc<dyn SnapshotProvider>> {
        self.providers.iter().find(|p| p.kind() == kind)
    }
}
