//! The side-effecting parts the engine drives, bundled: runtimes, snapshot
//! providers, the clock, hooks, the guardian (watchdog), cancellation and
//! fault injection. Tests build one from fakes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ProviderKind, RuntimeKind};
use crate::runtime::Runtime;
use crate::snapshot::SnapshotProvider;
use crate::sys::{Cancel, Clock, Faults, Hooks, NoHooks};

/// Watches freeze windows from outside the process (the guardian): if the
/// process dies or a window overruns, it thaws.
pub trait Watchdog: Send + Sync {
    /// A freeze window opens; it must close within `timeout`.
    fn window_open(&self, timeout: Duration) -> Result<(), String>;
    /// The window closed (everything thawed).
    fn window_closed(&self);
}

/// No watchdog (tests with fakes, dry runs).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWatchdog;
impl Watchdog for NoWatchdog {
    fn window_open(&self, _: Duration) -> Result<(), String> {
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
