//! Cancellation: a signal handler (installed by the binary) stores the
//! signal number; the lifecycle checks it at every step boundary and while
//! archiving, and unwinds in order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Set once to the number of the signal that asked us to stop.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicUsize>);

impl Cancel {
    /// A token nobody has cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared flag, for a signal handler to store the signal number in.
    pub fn flag(&self) -> Arc<AtomicUsize> {
        self.0.clone()
    }

    /// Cancels with `signal`.
    pub fn cancel(&self, signal: usize) {
        self.0.store(signal, Ordering::SeqCst);
    }

    /// The signal that cancelled the run, if any.
    pub fn signal(&self) -> Option<usize> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// An error for code that must stop now.
    pub fn check(&self) -> std::io::Result<()> {
        match self.signal() {
            None => Ok(()),
            Some(s) => Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                format!("interrupted by signal {s}"),
            )),
        }
    }
}
