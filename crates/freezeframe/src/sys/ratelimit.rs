//! A byte-rate limit shared by every writer of a run (`[throttle]
//! bwlimit`, as vzdump's `--bwlimit`): each write waits until the bytes
//! before it have had their time at the configured rate, so the rate
//! holds over any stretch longer than one write, whichever thread writes.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A shared limit; rate 0 means none.
#[derive(Debug, Default)]
pub struct RateLimit {
    rate: AtomicU64,
    /// When the bytes granted so far will have had their time.
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// A limit of `rate` bytes per second (`None`: unlimited).
    pub fn new(rate: Option<u64>) -> Arc<RateLimit> {
        let l = Arc::new(RateLimit::default());
        l.set_rate(rate);
        l
    }

    /// Changes the rate (`None`: unlimited).
    pub fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::SeqCst);
    }

    /// Whether a rate is set.
    pub fn is_limited(&self) -> bool {
        self.rate.load(Ordering::SeqCst) != 0
    }

    /// Waits until `n` more bytes may go.
    pub fn take(&self, n: usize) {
        let rate = self.rate.load(Ordering::SeqCst);
        if rate == 0 || n == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(n as f64 / rate as f64);
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            // Idle time is not saved up beyond a tenth of a second.
            let floor = now.checked_sub(Duration::from_millis(100)).unwrap_or(now);
            let start = next.map_or(now, |t| t.max(floor));
            let done = start + cost;
            *next = Some(done);
            done.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// A writer paced by a [`RateLimit`].
pub struct Limited<W> {
    inner: W,
    limit: Arc<RateLimit>,
}

impl<W> Limited<W> {
    /// Wraps `inner`.
    pub fn new(inner: W, limit: Arc<RateLimit>) -> Limited<W> {
        Limited { inner, limit }
    }
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.limit.is_limited() {
            return self.inner.write(buf);
        }
        // At most 256 KiB at a time: the pacing stays smooth.
        let n = buf.len().min(256 << 10);
        self.limit.take(n);
        self.inner.write(&buf[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits_and_a_limit_paces() {
        let l = RateLimit::new(None);
        let t = Instant::now();
        l.take(1 << 30);
        assert!(t.elapsed() < Duration::from_millis(50));
        let l = RateLimit::new(Some(10 << 20));
        let t = Instant::now();
        let mut w = Limited::new(io::sink(), l);
        w.write_all(&vec![0u8; 3 << 20]).unwrap();
        // 3 MiB at 10 MiB/s: at least ~0.2 s (the first 100 ms may be credit).
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
    }
}
