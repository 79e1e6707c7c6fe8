//! Fault injection, a testing aid compiled into every build:
//! `FREEZEFRAME_FAULT=<point>` makes the process SIGKILL itself when it
//! reaches the named point; `FREEZEFRAME_FAULT=<point>:hang=<duration>`
//! makes it stall there instead (until the duration passes or the run is
//! cancelled). Tests use it to prove the guarantees at every step boundary.

use std::io::Write;
use std::time::{Duration, Instant};

use super::cancel::Cancel;
use super::duration::{BadDuration, HumanDuration};

/// A `FREEZEFRAME_FAULT` value that names no fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadFaultSpec {
    /// Something after `:` that is not `hang=<duration>`.
    #[error("{FAULT_ENV}: `{0}` is not `hang=<duration>`")]
    NotHang(String),
    /// `hang=` with a bad duration.
    #[error("{FAULT_ENV}: {0}")]
    Duration(#[from] BadDuration),
    /// A point that is not in [`FAULT_POINTS`].
    #[error("{FAULT_ENV}: unknown fault point `{0}`; known: {known}", known = known_points())]
    UnknownPoint(String),
}

/// The environment variable read once at start.
pub const FAULT_ENV: &str = "FREEZEFRAME_FAULT";

/// Every fault point, in the order a run reaches them, with what has
/// happened when it is reached.
pub const FAULT_POINTS: &[(&str, &str)] = &[
    ("after-lock", "the host lock is held, nothing else done"),
    (
        "after-journal-freeze",
        "the freezes of a window are journaled, nothing frozen yet",
    ),
    (
        "after-freeze",
        "every container of the window is frozen, no snapshot yet",
    ),
    (
        "after-snapshot",
        "the snapshot exists, the containers are still frozen",
    ),
    (
        "after-thaw",
        "the window's containers are thawed, archiving not started",
    ),
    (
        "while-holding",
        "a provider holds what it reads changes with (LVM-thin: the pool's metadata snapshot), journaled",
    ),
    (
        "mid-archive",
        "an archive is partly written to its temporary file",
    ),
    (
        "before-base-swap",
        "a snapshot is to become its volume's base: no longer journaled for removal, not yet recorded",
    ),
    (
        "after-base-swap",
        "the new base is recorded, the old base not yet removed",
    ),
    (
        "before-manifest",
        "archives committed and snapshots removed, no manifest yet",
    ),
    ("mid-restore", "a restore has extracted its first entry"),
    (
        "before-register",
        "restore --as: the copy is complete in its staging folder, not yet in place or registered",
    ),
    (
        "before-registering-config",
        "restore --as: an OpenVZ copy's private area is in place, its <CTID>.conf not yet written",
    ),
    (
        "mid-prune",
        "prune rewrote a run's manifest; the files it dropped are not yet removed",
    ),
];

fn known_points() -> String {
    FAULT_POINTS
        .iter()
        .map(|p| p.0)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to do at the armed point.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Kill,
    Hang(Duration),
}

/// Where (if anywhere) this process fails on purpose.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    armed: Option<(String, Action)>,
}

impl Faults {
    /// No fault armed.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a `FREEZEFRAME_FAULT` value.
    pub fn parse(spec: &str) -> Result<Self, BadFaultSpec> {
        let (point, action) = match spec.split_once(':') {
            None => (spec, Action::Kill),
            Some((p, rest)) => {
                let d = rest
                    .strip_prefix("hang=")
                    .ok_or_else(|| BadFaultSpec::NotHang(rest.to_owned()))?;
                let d: HumanDuration = d.parse::<HumanDuration>()?;
                (p, Action::Hang(d.0))
            }
        };
        if !FAULT_POINTS.iter().any(|(n, _)| *n == point) {
            return Err(BadFaultSpec::UnknownPoint(point.to_owned()));
        }
        Ok(Self {
            armed: Some((point.to_owned(), action)),
        })
    }

    /// Reads `FREEZEFRAME_FAULT` (unset or empty: no fault).
    pub fn from_env() -> Result<Self, BadFaultSpec> {
        match std::env::var(FAULT_ENV) {
            Ok(s) if !s.is_empty() => Self::parse(&s),
            _ => Ok(Self::none()),
        }
    }

    /// Called at each point: kills or stalls the process if armed for it.
    pub fn hit(&self, point: &str, cancel: &Cancel) {
        debug_assert!(
            FAULT_POINTS.iter().any(|(n, _)| *n == point),
            "unknown fault point {point}"
        );
        let Some((armed, action)) = &self.armed else {
            return;
        };
        if armed != point {
            return;
        }
        match action {
            Action::Kill => {
                // Not eprintln!: it panics when stderr is gone, and this runs inside
                // a freeze window.
                let _ = writeln!(
                    std::io::stderr(),
                    "freezeframe: fault injection: SIGKILL at {point}"
                );
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                );
                // SIGKILL cannot be caught; this is never reached.
                std::process::abort();
            }
            Action::Hang(d) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "freezeframe: fault injection: hanging {d:?} at {point}"
                );
                let until = Instant::now() + *d;
                while Instant::now() < until && cancel.signal().is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points_and_hangs() {
        assert!(Faults::parse("after-freeze").is_ok());
        assert_eq!(
            Faults::parse("mid-archive:hang=2s").unwrap().armed,
            Some(("mid-archive".into(), Action::Hang(Duration::from_secs(2))))
        );
        assert!(Faults::parse("nowhere")
            .unwrap_err()
            .to_string()
            .contains("after-lock"));
        assert!(Faults::parse("after-freeze:sleep").is_err());
    }

    #[test]
    fn hang_ends_on_cancel() {
        let f = Faults::parse("after-thaw:hang=1m").unwrap();
        let c = Cancel::new();
        c.cancel(15);
        let t = Instant::now();
        f.hit("after-thaw", &c);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
