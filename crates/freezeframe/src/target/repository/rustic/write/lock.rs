//! restic-format lock files (restic `doc/design.rst`, "Locks"): while a
//! backup writes, the repository holds a non-exclusive lock naming host,
//! user and PID, refreshed every 5 minutes and removed at the end, so that
//! a `restic prune` elsewhere refuses instead of deleting packs in flight.
//! Another process's lock is stale (ignored) as restic judges it: older
//! than 30 minutes, or from this host with its PID gone. rustic_core's
//! backends do not reach restic's `locks/` folder; [`LockDir`] does.

use std::path::PathBuf;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustic_core::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::store::{hex, Store};
use super::WriteError;

/// restic's `locks/` folder of a repository.
pub(crate) trait LockDir: Send + Sync {
    /// The names of the lock files.
    fn list(&self) -> Result<Vec<String>, WriteError>;
    /// One lock file's bytes.
    fn read(&self, name: &str) -> Result<Vec<u8>, WriteError>;
    /// Writes a lock file.
    fn write(&self, name: &str, data: Vec<u8>) -> Result<(), WriteError>;
    /// Removes a lock file.
    fn remove(&self, name: &str) -> Result<(), WriteError>;
}

/// The `locks/` folder of a repository on a local file system.
pub(crate) struct LocalLocks(pub PathBuf);

impl LockDir for LocalLocks {
    fn list(&self) -> Result<Vec<String>, WriteError> {
        let rd = match std::fs::read_dir(&self.0) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &self.0, &e)),
        };
        Ok(rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| is_lock_name(n))
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, WriteError> {
        let p = self.0.join(name);
        let len = std::fs::symlink_metadata(&p)
            .map_err(|e| io_err("reading", &p, &e))?
            .len();
        check_lock_size(name, len)?;
        std::fs::read(&p).map_err(|e| io_err("reading", &p, &e))
    }

    fn write(&self, name: &str, data: Vec<u8>) -> Result<(), WriteError> {
        std::fs::create_dir_all(&self.0).map_err(|e| io_err("creating", &self.0, &e))?;
        let p = self.0.join(name);
        // Whole or not at all: another process may read it at any moment.
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.0).map_err(|e| io_err("writing", &p, &e))?;
        std::io::Write::write_all(&mut tmp, &data).map_err(|e| io_err("writing", &p, &e))?;
        tmp.persist(&p)
            .map(|_| ())
            .map_err(|e| io_err("writing", &p, &e.error))
    }

    fn remove(&self, name: &str) -> Result<(), WriteError> {
        let p = self.0.join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &p, &e)),
        }
    }
}

/// Whether `name` is a lock file's: 64 hex digits (anything else in
/// `locks/` is not ours to read).
pub(crate) fn is_lock_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Largest lock file read (restic's are a few hundred bytes): a bigger
/// one in `locks/` is not read into memory.
pub(crate) const MAX_LOCK_FILE: u64 = 64 << 10;

/// Refuses a lock file larger than [`MAX_LOCK_FILE`].
pub(crate) fn check_lock_size(name: &str, len: u64) -> Result<(), WriteError> {
    if len > MAX_LOCK_FILE {
        return Err(WriteError::Damaged(format!(
            "lock file {name} is {len} bytes, not a lock"
        )));
    }
    Ok(())
}

fn io_err(what: &str, p: &std::path::Path, e: &std::io::Error) -> WriteError {
    WriteError::Backend(format!("{what} lock file {}: {e}", p.display()))
}

/// restic refreshes its locks this often.
const REFRESH: Duration = Duration::from_secs(5 * 60);
/// A lock not refreshed for this long is stale (restic's rule).
const STALE_SECS: i64 = 30 * 60;

/// A lock file's JSON, as restic writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LockFile {
    /// When it was written (or last refreshed).
    pub time: Timestamp,
    /// Whether it excludes every other lock.
    pub exclusive: bool,
    /// The host of the process.
    pub hostname: String,
    /// Its user.
    #[serde(default)]
    pub username: String,
    /// Its PID.
    pub pid: i64,
    /// Its user id.
    #[serde(default)]
    pub uid: u32,
    /// Its group id.
    #[serde(default)]
    pub gid: u32,
    /// Written by freezeframe (restic ignores the extra field); only such
    /// locks are ever removed by `recover`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freezeframe: bool,
}

impl LockFile {
    /// Whether restic would ignore it: old, or of a dead process here.
    pub(crate) fn stale(&self, host: &str, now: Timestamp) -> bool {
        if now.as_second() - self.time.as_second() > STALE_SECS {
            return true;
        }
        self.hostname == host
            && u32::try_from(self.pid)
                .ok()
                .and_then(crate::sys::process::start_time)
                .is_none()
    }

    /// How a message names its holder.
    pub(crate) fn describe(&self, now: Timestamp) -> String {
        let age = (now.as_second() - self.time.as_second()).max(0);
        format!(
            "{} lock of PID {} on host {} (user {}), refreshed {} s ago",
            if self.exclusive { "an exclusive" } else { "a" },
            self.pid,
            self.hostname,
            if self.username.is_empty() {
                "?"
            } else {
                &self.username
            },
            age
        )
    }
}

/// A lock this process holds; removed when dropped.
pub(crate) struct HeldLock {
    store: Store,
    current: Arc<Mutex<String>>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

/// Every lock file that can be read, with its name (one removed while
/// listed, or unreadable, is in nobody's way).
fn all_locks(store: &Store) -> Result<Vec<(String, LockFile)>, WriteError> {
    let mut out = Vec::new();
    for id in store.locks().list()? {
        let lock = store
            .locks()
            .read(&id)
            .and_then(|stored| store.open_json(&stored, &id))
            .ok()
            .and_then(|json| serde_json::from_slice::<LockFile>(&json).ok());
        if let Some(l) = lock {
            out.push((id, l));
        }
    }
    Ok(out)
}

/// The locks of other processes that restic would not ignore.
pub(crate) fn live_locks(store: &Store) -> Result<Vec<(String, LockFile)>, WriteError> {
    let (host, now) = (crate::sys::host_name(), Timestamp::now());
    let mut locks = all_locks(store)?;
    locks.retain(|(_, l)| !l.stale(&host, now));
    Ok(locks)
}

/// Takes a lock (exclusive or not) for this process; refused with the
/// holder named when a live lock is in the way.
pub(crate) fn lock(store: &Store, exclusive: bool) -> Result<HeldLock, WriteError> {
    lock_refreshed(store, exclusive, REFRESH)
}

/// [`lock`], refreshed every `every`.
fn lock_refreshed(store: &Store, exclusive: bool, every: Duration) -> Result<HeldLock, WriteError> {
    let now = Timestamp::now();
    if let Some((_, l)) = live_locks(store)?
        .into_iter()
        .find(|(_, l)| exclusive || l.exclusive)
    {
        return Err(WriteError::Locked(l.describe(now)));
    }
    let me = LockFile {
        time: now,
        exclusive,
        hostname: crate::sys::host_name(),
        username: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        pid: i64::from(std::process::id()),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        freezeframe: true,
    };
    let id = write(store, &me)?;
    let current = Arc::new(Mutex::new(id));
    let (stop, stopped) = channel::<()>();
    let (rstore, rcur) = (store.clone(), current.clone());
    let refresher = std::thread::spawn(move || loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {
                let fresh = LockFile {
                    time: Timestamp::now(),
                    ..me.clone()
                };
                if let Ok(new) = write(&rstore, &fresh) {
                    if let Ok(mut c) = rcur.lock() {
                        let old = std::mem::replace(&mut *c, new);
                        let _ = rstore.locks().remove(&old);
                    }
                }
            }
            _ => return,
        }
    });
    Ok(HeldLock {
        store: store.clone(),
        current,
        stop: Some(stop),
        refresher: Some(refresher),
    })
}

fn write(store: &Store, l: &LockFile) -> Result<String, WriteError> {
    let json = serde_json::to_vec(l).map_err(|e| WriteError::Stopped(e.to_string()))?;
    let (id, sealed) = store.seal_json(&json)?;
    let name = hex(&id);
    store.locks().write(&name, sealed)?;
    Ok(name)
}

/// Removes freezeframe's own locks of this host whose process is gone
/// (left by a backup that was killed); returns how many. Another tool's
/// stale lock is its own to remove (`restic unlock`).
pub(crate) fn remove_stale_own(store: &Store) -> Result<usize, WriteError> {
    let (host, now) = (crate::sys::host_name(), Timestamp::now());
    let mut n = 0;
    for (id, l) in all_locks(store)? {
        if l.freezeframe && l.hostname == host && l.stale(&host, now) {
            store.locks().remove(&id)?;
            n += 1;
        }
    }
    Ok(n)
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(r) = self.refresher.take() {
            let _ = r.join();
        }
        if let Ok(c) = self.current.lock() {
            if let Err(e) = self.store.locks().remove(&c) {
                tracing::warn!("removing the repository lock failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock file as restic 0.14 writes it (decrypted).
    const RESTIC_LOCK: &str = r#"{"time":"2026-12-01T23:59:01.123456789+01:00","exclusive":false,"hostname":"web7","username":"root","pid":4242,"uid":0,"gid":0}"#;

    fn at(rfc: &str) -> Timestamp {
        rfc.parse().unwrap()
    }

    #[test]
    fn restics_lock_files_parse_and_ours_round_trip() {
        let l: LockFile = serde_json::from_str(RESTIC_LOCK).unwrap();
        assert_eq!(
            (l.hostname.as_str(), l.pid, l.exclusive),
            ("web7", 4242, false)
        );
        assert_eq!(l.time, at("2026-12-01T22:59:01.123456789Z"));
        let back: LockFile = serde_json::from_slice(&serde_json::to_vec(&l).unwrap()).unwrap();
        assert_eq!(back.time, l.time);
    }

    /// A store over a local folder (a v2 repository's layout, no config).
    fn local_store(dir: &std::path::Path) -> Store {
        let be = rustic_backend::LocalBackend::new(
            dir.to_string_lossy(),
            std::collections::BTreeMap::<String, String>::new(),
        )
        .unwrap();
        let config = rustic_core::repofile::ConfigFile::new(2, Default::default(), 0);
        Store::new(
            Arc::new(be),
            Arc::new(LocalLocks(dir.join("locks"))),
            &rustic_core::repofile::MasterKey::new(),
            &config,
        )
        .unwrap()
    }

    #[test]
    fn a_held_lock_is_refreshed_excludes_prune_and_is_removed_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        let store = local_store(d.path());
        let held = lock_refreshed(&store, false, Duration::from_millis(50)).unwrap();
        let first = store.locks().list().unwrap();
        assert_eq!(first.len(), 1);
        let t0 = all_locks(&store).unwrap()[0].1.time;
        std::thread::sleep(Duration::from_millis(300));
        let now = all_locks(&store).unwrap();
        assert_eq!(now.len(), 1, "the old file went with the refresh");
        assert_ne!(now[0].0, first[0], "refreshed under a new name");
        assert!(now[0].1.time > t0, "with a newer time");
        // Another backup may share it; a prune may not (our own PID is
        // alive: the lock is live to us too).
        drop(lock(&store, false).unwrap());
        let e = lock(&store, true).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(&format!("PID {}", std::process::id())), "{e}");
        drop(held);
        assert!(
            store.locks().list().unwrap().is_empty(),
            "removed at the end"
        );
        drop(lock(&store, true).unwrap());
    }

    #[test]
    fn recover_removes_only_freezeframes_own_dead_locks() {
        let d = tempfile::tempdir().unwrap();
        let store = local_store(d.path());
        let dead = |ours: bool| LockFile {
            time: Timestamp::now(),
            exclusive: false,
            hostname: crate::sys::host_name(),
            username: "root".into(),
            pid: i64::from(i32::MAX),
            uid: 0,
            gid: 0,
            freezeframe: ours,
        };
        let restics = write(&store, &dead(false)).unwrap();
        let ours = write(&store, &dead(true)).unwrap();
        assert!(!serde_json::to_string(&dead(false))
            .unwrap()
            .contains("freezeframe"));
        assert_eq!(remove_stale_own(&store).unwrap(), 1);
        assert_eq!(store.locks().list().unwrap(), vec![restics.clone()]);
        assert_ne!(restics, ours);
        // A file too big to be a lock is not read, and in nobody's way.
        std::fs::write(
            d.path().join("locks").join("a".repeat(64)),
            vec![0; 100 << 10],
        )
        .unwrap();
        assert!(store.locks().read(&"a".repeat(64)).is_err());
        assert_eq!(live_locks(&store).unwrap().len(), 0);
    }

    #[test]
    fn staleness_follows_restics_rules() {
        let now = at("2026-12-02T00:00:00Z");
        let lock = |host: &str, pid: i64, time: &str| LockFile {
            time: at(time),
            exclusive: false,
            hostname: host.into(),
            username: "root".into(),
            pid,
            uid: 0,
            gid: 0,
            freezeframe: false,
        };
        let me = i64::from(std::process::id());
        // Another host's: stale only by age.
        assert!(!lock("other", 1, "2026-12-01T23:31:00Z").stale("here", now));
        assert!(lock("other", 1, "2026-12-01T23:29:00Z").stale("here", now));
        // This host's: stale when its process is gone.
        assert!(!lock("here", me, "2026-12-01T23:59:00Z").stale("here", now));
        assert!(lock("here", i64::from(i32::MAX), "2026-12-01T23:59:00Z").stale("here", now));
        let d = lock("other", 77, "2026-12-01T23:59:30Z").describe(now);
        assert!(
            d.contains("PID 77") && d.contains("host other") && d.contains("30 s ago"),
            "{d}"
        );
    }
}
