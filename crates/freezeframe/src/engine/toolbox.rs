//! The side-effecting parts the engine drives, bundled: runtimes, snapshot
//! providers, the clock and the host name. Tests build one from fakes.

use std::sync::Arc;

use crate::config::{ProviderKind, RuntimeKind};
use crate::runtime::Runtime;
use crate::snapshot::SnapshotProvider;
use crate::sys::Clock;

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
}

impl Toolbox {
    /// The runtime of `kind`.
    pub fn runtime(&self, kind: RuntimeKind) -> Option<&Arc<dyn Runtime>> {
        self.runtimes.iter().find(|r| r.kind() == kind)
    }

    /// The snapshot provider of `kind`.
    pub fn provider(&self, kind: ProviderKind) -> Option<&Arc<dyn SnapshotProvider>> {
        self.providers.iter().find(|p| p.kind() == kind)
    }
}
