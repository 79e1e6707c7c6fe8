//! The clock, behind a trait so the lifecycle can be driven by a fake one.

use std::time::{Duration, Instant, SystemTime};

/// Wall time for records, monotonic time for measuring windows.
pub trait Clock: Send + Sync {
    /// Wall-clock time (recorded in manifests).
    fn wall(&self) -> SystemTime;
    /// Monotonic time since an arbitrary, fixed origin (used for durations).
    fn mono(&self) -> Duration;
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn mono(&self) -> Duration {
        self.origin.elapsed()
    }
}
