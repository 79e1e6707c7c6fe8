//! Watching a run from outside: progress bars, logs. The lifecycle and the
//! archive workers report each container's phase and the bytes read.

use crate::target::Outcome;

/// A container's progress, reported to the [`Observer`].
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// About to freeze.
    Freezing,
    /// Thawed again after `freeze_ms`.
    Thawed {
        /// The freeze window.
        freeze_ms: f64,
    },
    /// Archiving from the snapshot.
    Archiving,
    /// Done.
    Finished(Outcome),
}

/// Watches a run (progress bars, logs). Called from several threads.
pub trait Observer: Send + Sync {
    /// A container entered `phase`.
    fn phase(&self, _container: &str, _phase: &Phase) {}
    /// `n` more bytes of the container's file data were read.
    fn bytes(&self, _container: &str, _n: u64) {}
    /// Whether [`Observer::sized`] is wanted: the worker then walks each
    /// container's tree once (metadata only) before archiving it.
    fn wants_sizes(&self) -> bool {
        false
    }
    /// The container's files hold about `bytes` (excludes applied).
    fn sized(&self, _container: &str, _bytes: u64) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct SilentObserver;
impl Observer for SilentObserver {}
