//! What monitoring asks of a host: per container, its last run and its
//! last good backup (`<state_dir>/status.json`, replaced atomically after
//! every run, so a run killed half-way leaves the previous record), and
//! the assessment `freezeframe status` turns into Nagios-style levels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sys::atomic;
use crate::target::manifest::{Manifest, Outcome};

/// The record's file name in the state dir.
pub const STATUS_FILE: &str = "status.json";

/// Largest record read (a host with thousands of containers stays far
/// below).
const MAX_STATUS: u64 = 64 << 20;

/// The record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a status record.
    #[error("{path} is not a freezeframe status record ({reason}); remove it, the next run writes a new one")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One container's last run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// The run id.
    pub run: String,
    /// When the run ended.
    pub finished_at: DateTime<Utc>,
    /// Its result for this container.
    pub result: Outcome,
    /// Why it failed, or what a partial backup misses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The freeze window, seconds (none if not frozen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_seconds: Option<f64>,
    /// Everything for this container, seconds.
    pub duration_seconds: f64,
    /// File data read, bytes.
    pub bytes_read: u64,
    /// Bytes added to the target.
    pub bytes_written: u64,
    /// Highest copy-on-write use of its snapshot while read (LVM), %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_peak_percent: Option<f64>,
}

/// One container's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Its last run.
    pub last_run: LastRun,
    /// The end of its last run with result `ok`, and that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<(DateTime<Utc>, String)>,
}

/// The totals of the last run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunTotals {
    /// The run id.
    pub run: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// Containers by result.
    pub ok: u64,
    /// Partial backups.
    pub partial: u64,
    /// Failures.
    pub failed: u64,
    /// File data read, bytes.
    pub bytes_read: u64,
    /// Bytes added to the target.
    pub bytes_written: u64,
    /// The longest freeze window, seconds.
    pub freeze_seconds_max: f64,
}

/// The whole record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusBook {
    /// By container id.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerStatus>,
    /// The last run that got as far as a manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunTotals>,
    /// Each container's last restore drill.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drills: BTreeMap<String, Drill>,
}

/// A container's last restore drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drill {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// The backup restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Whether it passed.
    pub ok: bool,
    /// What failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StatusBook {
    /// The record in `state_dir` (empty if none was written yet).
    pub fn load(state_dir: &Path) -> Result<StatusBook, StatusError> {
        let path = state_dir.join(STATUS_FILE);
        let text = match crate::sys::fs::read_regular(&path, MAX_STATUS) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StatusBook::default()),
            Err(source) => return Err(StatusError::Io { path, source }),
        };
        serde_json::from_slice(&text).map_err(|e| StatusError::Invalid {
            path,
            reason: e.to_string(),
        })
    }

    /// Replaces the record in `state_dir` atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), StatusError> {
        let path = state_dir.join(STATUS_FILE);
        let json = serde_json::to_vec_pretty(self).expect("a status record serializes");
        super::ensure_dir(state_dir)
            .and_then(|()| atomic::replace(&path, &json))
            .map_err(|source| StatusError::Io { path, source })
    }

    /// Takes in what `m` says of each of its containers.
    pub fn record(&mut self, m: &Manifest) {
        let mut t = RunTotals {
            run: m.run.clone(),
            started_at: m.started_at,
            finished_at: m.finished_at,
            ok: 0,
            partial: 0,
            failed: 0,
            bytes_read: 0,
            bytes_written: 0,
            freeze_seconds_max: 0.0,
        };
        for c in &m.containers {
            match c.result {
                Outcome::Ok => t.ok += 1,
                Outcome::Partial => t.partial += 1,
                Outcome::Failed => t.failed += 1,
            }
            t.bytes_read += c.bytes_in;
            t.bytes_written += c.bytes_out;
            let freeze = c.freeze_ms.map(|ms| ms / 1000.0);
            t.freeze_seconds_max = t.freeze_seconds_max.max(freeze.unwrap_or(0.0));
            let peak = m
                .snapshots
                .iter()
                .filter(|s| s.volume == c.volume)
                .filter_map(|s| s.peak_used_percent)
                .reduce(f64::max);
            let error = c.error.clone().or_else(|| {
                (c.result == Outcome::Partial)
                    .then(|| format!("{} files could not be read", c.tree.unreadable))
            });
            let last_run = LastRun {
                run: m.run.clone(),
                finished_at: m.finished_at,
                result: c.result,
                error,
                freeze_seconds: freeze,
                duration_seconds: c.timings.total_ms / 1000.0,
                bytes_read: c.bytes_in,
                bytes_written: c.bytes_out,
                snapshot_peak_percent: peak,
            };
            let before = self.containers.remove(&c.id).and_then(|s| s.last_success);
            let last_success = match c.result {
                Outcome::Ok => Some((m.finished_at, m.run.clone())),
                _ => before,
            };
            self.containers.insert(
                c.id.clone(),
                ContainerStatus {
                    last_run,
                    last_success,
                },
            );
        }
        self.last_run = Some(t);
    }
}

/// How a container stands, as monitoring plugins say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A good backup within the age limit, and the last run was good.
    Ok,
    /// A good backup within the limit, but the last run failed or was partial.
    Warning,
    /// No good backup within the limit (or none at all).
    Critical,
}

impl Level {
    /// The monitoring-plugin exit code: 0, 1, 2.
    pub fn exit_code(self) -> u8 {
        self as u8
    }

    /// `OK`, `WARNING`, `CRITICAL`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }
}

/// One configured container, assessed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusRow {
    /// Container id.
    pub id: String,
    /// Its level.
    pub level: Level,
    /// Why, in a few words.
    pub reason: String,
    /// The end of its last good backup's run.
    pub last_success: Option<DateTime<Utc>>,
    /// That run.
    pub last_success_run: Option<String>,
    /// Its age in seconds.
    pub age_seconds: Option<i64>,
    /// Its last run, if any.
    pub last_run: Option<LastRun>,
    /// Its last restore drill, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<Drill>,
}

/// Assesses each of `ids` (the configured containers) at `now`: critical
/// without a good backup younger than `max_age`, warning if the last run
/// was not good, else ok.
pub fn assess(
    book: &StatusBook,
    ids: &[String],
    now: DateTime<Utc>,
    max_age: Duration,
) -> Vec<StatusRow> {
    let limit = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    ids.iter()
        .map(|id| {
            let rec = book.containers.get(id);
            let success = rec.and_then(|r| r.last_success.clone());
            let age = success.as_ref().map(|(t, _)| now.signed_duration_since(*t));
            let last = rec.map(|r| &r.last_run);
            let (level, reason) = match (&age, last) {
                (None, None) => (Level::Critical, "never backed up".to_owned()),
                (None, Some(l)) => (
                    Level::Critical,
                    format!("no good backup yet; last run {}", said(l)),
                ),
                (Some(a), _) if *a > limit => (
                    Level::Critical,
                    format!(
                        "last good backup {} ago, older than {}",
                        ago(*a),
                        crate::sys::duration::HumanDuration(max_age)
                    ),
                ),
                (_, _) if drill_failed(book, id) => (
                    Level::Critical,
                    format!(
                        "last restore drill failed: {}",
                        book.drills[id].error.as_deref().unwrap_or("?")
                    ),
                ),
                (Some(_), Some(l)) if l.result != Outcome::Ok => {
                    (Level::Warning, format!("last run {}", said(l)))
                }
                (Some(a), _) => (Level::Ok, format!("last good backup {} ago", ago(*a))),
            };
            StatusRow {
                id: id.clone(),
                level,
                reason,
                last_success: success.as_ref().map(|s| s.0),
                last_success_run: success.map(|s| s.1),
                age_seconds: age.map(|a| a.num_seconds()),
                last_run: last.cloned(),
                last_drill: book.drills.get(id).cloned(),
            }
        })
        .collect()
}

/// Whether the container's last drill failed (a backup that does not
/// restore is no backup: critical, whatever its age).
fn drill_failed(book: &StatusBook, id: &str) -> bool {
    book.drills.get(id).is_some_and(|d| !d.ok)
}

fn said(l: &LastRun) -> String {
    match &l.error {
        Some(e) => format!("{}: {e}", l.result),
        None => l.result.to_string(),
    }
}

/// `3d4h`, `5h12m`, `42s`: an age, to the two largest units.
pub fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(result: Outcome, at: DateTime<Utc>) -> LastRun {
        LastRun {
            run: "r".into(),
            finished_at: at,
            result,
            error: (result == Outcome::Failed).then(|| "disk full".into()),
            freeze_seconds: Some(0.1),
            duration_seconds: 1.0,
            bytes_read: 1,
            bytes_written: 1,
            snapshot_peak_percent: None,
        }
    }

    #[test]
    fn levels_follow_age_and_the_last_run() {
        let now: DateTime<Utc> = "2026-12-02T12:00:00Z".parse().unwrap();
        let h = |n: i64| now - chrono::Duration::hours(n);
        let mut book = StatusBook::default();
        let mut put = |id: &str, last: LastRun, ok_at: Option<DateTime<Utc>>| {
            book.containers.insert(
                id.into(),
                ContainerStatus {
                    last_run: last,
                    last_success: ok_at.map(|t| (t, "r".into())),
                },
            );
        };
        put("fresh", run(Outcome::Ok, h(1)), Some(h(1)));
        put("old", run(Outcome::Ok, h(30)), Some(h(30)));
        put("failed", run(Outcome::Failed, h(1)), Some(h(25)));
        put("partial", run(Outcome::Partial, h(1)), Some(h(2)));
        put("bad-only", run(Outcome::Failed, h(1)), None);
        let ids: Vec<String> = ["fresh", "old", "failed", "partial", "bad-only", "never"]
            .map(String::from)
            .to_vec();
        let rows = assess(&book, &ids, now, Duration::from_secs(26 * 3600));
        let got: Vec<(&str, Level)> = rows.iter().map(|r| (r.id.as_str(), r.level)).collect();
        assert_eq!(
            got,
            [
                ("fresh", Level::Ok),
                ("old", Level::Critical),
                ("failed", Level::Warning),
                ("partial", Level::Warning),
                ("bad-only", Level::Critical),
                ("never", Level::Critical),
            ]
        );
        assert_eq!(rows[1].reason, "last good backup 1d6h ago, older than 26h");
        assert_eq!(rows[2].reason, "last run failed: disk full");
        assert_eq!(rows[5].reason, "never backed up");
        assert_eq!(rows[0].age_seconds, Some(3600));
    }
}
