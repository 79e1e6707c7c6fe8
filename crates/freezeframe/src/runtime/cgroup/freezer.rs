//! The cgroup freezer state machine, v1 and v2.
//!
//! v2: write `1` to `cgroup.freeze`, then wait until `cgroup.events` says
//! `frozen 1`. v1: write `FROZEN` to `freezer.state` and read it back; while
//! it says `FREEZING`, write `FROZEN` again. Either way, if the deadline
//! passes the freeze is undone before the error is returned: a container is
//! never left half-frozen by this module.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::runtime::RuntimeError;

/// Which freezer interface a cgroup has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerVersion {
    /// `freezer.state` in the v1 freezer hierarchy.
    V1,
    /// `cgroup.freeze` + `cgroup.events` in cgroup v2.
    V2,
}

/// The freezer of one cgroup directory.
#[derive(Debug, Clone)]
pub struct Freezer {
    version: FreezerVersion,
    dir: PathBuf,
    id: String,
}

/// What the v1 state machine does after reading `freezer.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum V1Step {
    /// Frozen: done.
    Done,
    /// Still freezing: write `FROZEN` again and wait.
    Retry,
    /// Thawed (e.g. someone else thawed it): write `FROZEN` again.
    Rewrite,
}

pub(crate) fn v1_step(state: &str) -> V1Step {
    match state.trim() {
        "FROZEN" => V1Step::Done,
        "FREEZING" => V1Step::Retry,
        _ => V1Step::Rewrite,
    }
}

/// Whether the text of `cgroup.events` says the cgroup is frozen.
pub(crate) fn v2_events_frozen(events: &str) -> Option<bool> {
    events.lines().find_map(|l| match l.trim() {
        "frozen 1" => Some(true),
        "frozen 0" => Some(false),
        _ => None,
    })
}

impl Freezer {
    /// The freezer of cgroup directory `dir`; `id` names the container in errors.
    pub fn new(version: FreezerVersion, dir: PathBuf, id: String) -> Self {
        Self { version, dir, id }
    }

    /// Which interface this is.
    pub fn version(&self) -> FreezerVersion {
        self.version
    }

    /// The cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn control_file(&self) -> PathBuf {
        match self.version {
            FreezerVersion::V1 => self.dir.join("freezer.state"),
            FreezerVersion::V2 => self.dir.join("cgroup.freeze"),
        }
    }

    fn state_file(&self) -> PathBuf {
        match self.version {
            FreezerVersion::V1 => self.dir.join("freezer.state"),
            FreezerVersion::V2 => self.dir.join("cgroup.events"),
        }
    }

    fn write(&self, path: &Path, value: &str) -> Result<(), RuntimeError> {
        std::fs::write(path, value).map_err(|source| RuntimeError::Io {
            id: self.id.clone(),
            op: "write",
            path: path.to_owned(),
            source,
        })
    }

    fn read(&self, path: &Path) -> Result<String, RuntimeError> {
        std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            id: self.id.clone(),
            op: "read",
            path: path.to_owned(),
            source,
        })
    }

    /// Freezes the cgroup and waits until the kernel says it is frozen. On a
    /// timeout or error the cgroup is thawed before returning.
    pub fn freeze(&self, timeout: Duration) -> Result<(), RuntimeError> {
        let result = self.freeze_inner(timeout);
        if result.is_err() {
            if let Err(e) = self.thaw() {
                tracing::error!(container = %self.id, error = %e, "thaw after failed freeze failed");
            }
        }
        result
    }

    fn freeze_inner(&self, timeout: Duration) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + timeout;
        let control = self.control_file();
        let state_file = self.state_file();
        let (on, _) = self.values();
        self.write(&control, on)?;
        let mut pause = Duration::from_micros(50);
        loop {
            let state = self.read(&state_file)?;
            let frozen = match self.version {
                FreezerVersion::V2 => v2_events_frozen(&state) == Some(true),
                FreezerVersion::V1 => match v1_step(&state) {
                    V1Step::Done => true,
                    V1Step::Retry | V1Step::Rewrite => false,
                },
            };
            if frozen {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::FreezeTimeout {
                    id: self.id.clone(),
                    timeout,
                    path: state_file,
                    state: state.trim().replace('\n', ", "),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
            if self.version == FreezerVersion::V1 {
                // The v1 freezer can stall in FREEZING (a task in an
                // uninterruptible sleep); writing FROZEN again retries.
                self.write(&control, on)?;
            }
        }
    }

    /// Asks the kernel to freeze (first half of [`freeze_all`]).
    fn request(&self) -> Result<(), RuntimeError> {
        let (on, _) = self.values();
        self.write(&self.control_file(), on)
    }

    /// Whether the freeze asked for is done; `Err(state)` with what the
    /// state file says while it is not (v1: asks again, as the kernel can
    /// stall in `FREEZING`).
    fn confirmed(&self) -> Result<Result<(), String>, RuntimeError> {
        let state = self.read(&self.state_file())?;
        let frozen = match self.version {
            FreezerVersion::V2 => v2_events_frozen(&state) == Some(true),
            FreezerVersion::V1 => v1_step(&state) == V1Step::Done,
        };
        if frozen {
            return Ok(Ok(()));
        }
        if self.version == FreezerVersion::V1 {
            self.request()?;
        }
        Ok(Err(state.trim().replace('\n', ", ")))
    }

    fn values(&self) -> (&'static str, &'static str) {
        match self.version {
            FreezerVersion::V1 => ("FROZEN", "THAWED"),
            FreezerVersion::V2 => ("1", "0"),
        }
    }

    /// Thaws the cgroup. Thawing a thawed cgroup is a no-op.
    pub fn thaw(&self) -> Result<(), RuntimeError> {
        let (_, off) = self.values();
        self.write(&self.control_file(), off)
    }

    /// Whether the kernel reports the cgroup frozen (or freezing, for v1).
    pub fn is_frozen(&self) -> Result<bool, RuntimeError> {
        let state = self.read(&self.state_file())?;
        Ok(match self.version {
            FreezerVersion::V2 => {
                // `cgroup.freeze` = 1 counts too: the kernel is still freezing.
                v2_events_frozen(&state) == Some(true)
                    || self.read(&self.control_file())?.trim() == "1"
            }
            FreezerVersion::V1 => state.trim() != "THAWED",
        })
    }
}

/// Freezes every cgroup of `freezers` at once: the freeze of each is asked
/// for first, then all are waited on together, so that the last one asked
/// is not frozen longer than the first. Each not frozen within `budget` is
/// thawed again and fails alone; the others stay frozen. Returns, per
/// freezer in order, how long after the start it was confirmed.
pub fn freeze_all(freezers: &[Freezer], budget: Duration) -> Vec<Result<Instant, RuntimeError>> {
    let t0 = Instant::now();
    let deadline = t0 + budget;
    let mut out: Vec<Option<Result<Instant, RuntimeError>>> = freezers
        .iter()
        .map(|f| f.request().err().map(Err))
        .collect();
    let mut last_state: Vec<String> = vec![String::new(); freezers.len()];
    let mut pause = Duration::from_micros(50);
    loop {
        let mut pending = false;
        for (i, f) in freezers.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            match f.confirmed() {
                Ok(Ok(())) => out[i] = Some(Ok(Instant::now())),
                Ok(Err(state)) => {
                    last_state[i] = state;
                    pending = true;
                }
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        if !pending {
            break;
        }
        if Instant::now() >= deadline {
            for (i, f) in freezers.iter().enumerate() {
                if out[i].is_none() {
                    out[i] = Some(Err(RuntimeError::FreezeTimeout {
                        id: f.id.clone(),
                        timeout: budget,
                        path: f.state_file(),
                        state: std::mem::take(&mut last_state[i]),
                    }));
                }
            }
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
    let out: Vec<Result<Instant, RuntimeError>> = out
        .into_iter()
        .map(|r| r.expect("every freezer has a result"))
        .collect();
    // Never left frozen by a failure here.
    for (f, r) in freezers.iter().zip(&out) {
        if r.is_err() {
            if let Err(e) = f.thaw() {
                tracing::error!(container = %f.id, error = %e, "thaw after failed freeze failed");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_v2() -> (tempfile::TempDir, Freezer) {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("cgroup.freeze"), "0\n").unwrap();
        fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let f = Freezer::new(FreezerVersion::V2, d.path().to_owned(), "t".into());
        (d, f)
    }

    #[test]
    fn v2_waits_for_kernel_to_report_frozen() {
        let (d, f) = fake_v2();
        let events = d.path().join("cgroup.events");
        let flipper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            fs::write(events, "populated 1\nfrozen 1\n").unwrap();
        });
        let t = Instant::now();
        f.freeze(Duration::from_secs(5)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(25));
        flipper.join().unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("cgroup.freeze")).unwrap(),
            "1"
        );
        assert!(f.is_frozen().unwrap());
        f.thaw().unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("cgroup.freeze")).unwrap(),
            "0"
        );
    }

    #[test]
    fn v2_timeout_thaws_and_names_the_deadline() {
        let (d, f) = fake_v2();
        let err = f.freeze(Duration::from_millis(40)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("40 ms"), "{msg}");
        assert!(msg.contains("frozen 0"), "{msg}");
        // never left frozen
        assert_eq!(
            fs::read_to_string(d.path().join("cgroup.freeze")).unwrap(),
            "0"
        );
    }

    #[test]
    fn v1_frozen_immediately() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("freezer.state"), "THAWED\n").unwrap();
        let f = Freezer::new(FreezerVersion::V1, d.path().to_owned(), "t".into());
        // A plain file reads back what was written: FROZEN at once.
        f.freeze(Duration::from_secs(1)).unwrap();
        assert!(f.is_frozen().unwrap());
        f.thaw().unwrap();
        assert!(!f.is_frozen().unwrap());
    }

    #[test]
    fn v1_state_machine() {
        assert_eq!(v1_step("FROZEN\n"), V1Step::Done);
        assert_eq!(v1_step("FREEZING\n"), V1Step::Retry);
        assert_eq!(v1_step("THAWED\n"), V1Step::Rewrite);
    }

    #[test]
    fn v2_events_parsing() {
        assert_eq!(v2_events_frozen("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(v2_events_frozen("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(v2_events_frozen("populated 0\n"), None);
    }

    #[test]
    fn freeze_all_asks_every_cgroup_first_and_fails_only_the_stuck_one() {
        let (da, a) = fake_v2();
        let (db, b) = fake_v2();
        let (_dc, c) = fake_v2();
        // a and b are confirmed by the "kernel" once both were asked; c never.
        let (ea, eb) = (
            da.path().join("cgroup.events"),
            db.path().join("cgroup.events"),
        );
        let (fa, fb) = (
            da.path().join("cgroup.freeze"),
            db.path().join("cgroup.freeze"),
        );
        let kernel = std::thread::spawn(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                let asked = |p: &std::path::Path| fs::read_to_string(p).unwrap().trim() == "1";
                if asked(&fa) && asked(&fb) {
                    fs::write(&ea, "populated 1\nfrozen 1\n").unwrap();
                    fs::write(&eb, "populated 1\nfrozen 1\n").unwrap();
                    return true;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            false
        });
        let r = freeze_all(
            &[a.clone(), b.clone(), c.clone()],
            Duration::from_millis(300),
        );
        assert!(
            kernel.join().unwrap(),
            "both were asked before either was confirmed"
        );
        assert!(r[0].is_ok() && r[1].is_ok(), "{r:?}");
        let e = r[2].as_ref().unwrap_err().to_string();
        assert!(e.contains("300 ms") && e.contains("frozen 0"), "{e}");
        assert!(a.is_frozen().unwrap() && b.is_frozen().unwrap());
        assert!(!c.is_frozen().unwrap(), "the stuck one was thawed");
    }

    #[test]
    fn missing_files_are_io_errors_with_path() {
        let d = tempfile::tempdir().unwrap();
        let f = Freezer::new(FreezerVersion::V2, d.path().join("gone"), "t".into());
        let msg = f.freeze(Duration::from_millis(10)).unwrap_err().to_string();
        assert!(msg.contains("gone/cgroup.freeze"), "{msg}");
    }
}
