//! A byte-rate limit shared by every writer of a run (`[throttle]
//! bwlimit`, as vzdump's `--bwlimit`): each write waits until the bytes
//! before it have had their time at the configured rate, so the rate
//! holds over any stretch longer than one write, whichever thread writes.
//! A limit can also be *held*: every write waits until it is released
//! (the archive writes during another container's freeze window, when the
//! archive phase's cgroup v2 limits do not apply).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A shared limit; rate 0 means none.
#[derive(Debug, Default)]
pub struct RateLimit {
    rate: AtomicU64,
    /// When the bytes granted so far will have had their time.
    next: Mutex<Option<Instant>>,
    /// Whether writes wait (read without the lock on the fast path).
    held: AtomicBool,
    /// The same, under the lock writes wait on.
    hold: Mutex<bool>,
    released: Condvar,
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

    /// Holds every write (`true`) until released (`false`).
    pub fn hold(&self, held: bool) {
        let mut h = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        *h = held;
        self.held.store(held, Ordering::SeqCst);
        if !held {
            self.released.notify_all();
        }
    }

    /// Whether writes are held or paced.
    fn is_active(&self) -> bool {
        self.is_limited() || self.held.load(Ordering::SeqCst)
    }

    /// Waits while writes are held.
    fn wait_released(&self) {
        if !self.held.load(Ordering::SeqCst) {
            return;
        }
        let mut h = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        while *h {
            h = self.released.wait(h).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits while writes are held, then until `n` more bytes may go.
    pub fn take(&self, n: usize) {
        self.wait_released();
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
        if !self.limit.is_active() {
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

    #[test]
    fn a_held_limit_stops_writes_until_released() {
        let l = RateLimit::new(None);
        l.hold(true);
        let written = Arc::new(AtomicU64::new(0));
        let writer = {
            let (l, written) = (l.clone(), written.clone());
            std::thread::spawn(move || {
                let mut w = Limited::new(io::sink(), l);
                w.write_all(b"x").unwrap();
                written.store(1, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(written.load(Ordering::SeqCst), 0, "a held write went");
        l.hold(false);
        writer.join().unwrap();
        assert_eq!(written.load(Ordering::SeqCst), 1);
    }
}
