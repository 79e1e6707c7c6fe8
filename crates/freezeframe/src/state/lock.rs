//! The host lock: one backup, restore or recover at a time. It is an
//! `flock` on `<state_dir>/lock`, so the kernel releases it when its holder
//! dies, however it dies; the file names the holder (PID, start time, what,
//! since) for error messages and for reporting a takeover.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

use crate::sys::{process, Cancel};

/// File name of the lock inside the state dir.
pub const LOCK_NAME: &str = "lock";

/// Taking the lock failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error("another freezeframe holds the host lock {path}: {holder}; wait for it to finish or pass --lock-wait")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// Interrupted while waiting.
    #[error("interrupted while waiting for the host lock {0}")]
    Interrupted(PathBuf),
    /// The lock file could not be used.
    #[error("host lock {path}: {source} (check state_dir in the config)")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The held lock; released (and its file emptied) on drop.
#[derive(Debug)]
pub struct HostLock {
    file: File,
    path: PathBuf,
}

fn describe(content: &str) -> String {
    let f: Vec<&str> = content.split_whitespace().collect();
    match f[..] {
        [pid, _started, since, what, ..] => {
            let since = since
                .parse::<i64>()
                .ok()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| since.to_owned());
            format!("`freezeframe {what}`, PID {pid}, started {since}")
        }
        _ => "an unknown process".into(),
    }
}

impl HostLock {
    /// Takes the lock in `state_dir` for `what` (`backup`, `restore`, …),
    /// waiting up to `wait`. Returns the lock and, if it was left behind by
    /// a process that is gone, a warning saying so.
    pub fn acquire(
        state_dir: &Path,
        what: &str,
        wait: Duration,
        cancel: &Cancel,
    ) -> Result<(Self, Option<String>), LockError> {
        let path = state_dir.join(LOCK_NAME);
        let err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        super::ensure_dir(state_dir).map_err(err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        let deadline = Instant::now() + wait;
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    if cancel.signal().is_some() {
                        return Err(LockError::Interrupted(path));
                    }
                    if Instant::now() >= deadline {
                        let mut s = String::new();
                        let _ = file.read_to_string(&mut s);
                        return Err(LockError::Held {
                            path,
                            holder: describe(&s),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(err(e.into())),
            }
        }
        let mut previous = String::new();
        file.read_to_string(&mut previous).map_err(err)?;
        let (pid, started) = process::me();
        let takeover = match previous.split_whitespace().collect::<Vec<_>>()[..] {
            [p, s, ..] if !previous.trim().is_empty() => {
                let (p, s) = (p.parse().unwrap_or(0), s.parse().unwrap_or(0));
                (!((p == pid && s == started) || process::alive(p, s))).then(|| {
                    format!(
                        "took over the host lock {} left by {}, which is no longer running",
                        path.display(),
                        describe(&previous)
                    )
                })
            }
            _ => None,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        file.set_len(0).map_err(err)?;
        file.rewind().map_err(err)?;
        file.write_all(format!("{pid} {started} {now} {what}\n").as_bytes())
            .map_err(err)?;
        file.sync_data().map_err(err)?;
        Ok((Self { file, path }, takeover))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // An empty file means "released cleanly"; the flock goes with the fd.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let d = tempfile::tempdir().unwrap();
        let c = Cancel::new();
        let (l, w) = HostLock::acquire(d.path(), "backup", Duration::ZERO, &c).unwrap();
        assert!(w.is_none());
        // flock is per open file description: a second open conflicts even in-process.
        let e = HostLock::acquire(d.path(), "restore", Duration::from_millis(100), &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("PID {}", std::process::id())) && e.contains("freezeframe backup"),
            "{e}"
        );
        drop(l);
        assert_eq!(
            std::fs::read_to_string(d.path().join(LOCK_NAME)).unwrap(),
            ""
        );
        HostLock::acquire(d.path(), "backup", Duration::ZERO, &c).unwrap();
    }

    #[test]
    fn lock_of_a_dead_process_is_taken_over_with_a_warning() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(LOCK_NAME), "999999 12345 1700000000 backup\n").unwrap();
        let (_l, w) =
            HostLock::acquire(d.path(), "backup", Duration::ZERO, &Cancel::new()).unwrap();
        let w = w.unwrap();
        assert!(
            w.contains("PID 999999") && w.contains("no longer running"),
            "{w}"
        );
    }
}
