//! Names in a tar target: run folders `<YYYY-MM-DD>T<HHMMSS>Z-<host>` and
//! the files inside them.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::config::{Compression, ContainerId};

/// File name of the manifest, the last file of every complete run.
pub const MANIFEST_NAME: &str = "manifest.json";

/// File name of the record of the process writing a run (removed once the
/// manifest is written): a run folder without a manifest whose writer
/// still runs is in progress, not damaged.
pub const RUN_OWNER_NAME: &str = ".ff-owner";

/// Identifies one run: its start time (UTC, to the second) and host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(String);

impl RunId {
    /// The run started at `at` on `host`; `seq` > 1 disambiguates runs
    /// started within the same second.
    pub fn new(at: DateTime<Utc>, host: &str, seq: u32) -> Self {
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = format!("{}-{host}", at.format("%Y-%m-%dT%H%M%SZ"));
        Self(if seq > 1 {
            format!("{base}.{seq}")
        } else {
            base
        })
    }

    /// Accepts a folder name that looks like a run id.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() > 19
            && s.is_char_boundary(18)
            && chrono::NaiveDateTime::parse_from_str(&s[..18], "%Y-%m-%dT%H%M%SZ").is_ok()
            && s.as_bytes()[18] == b'-'
            && !s.contains('/');
        ok.then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short form for snapshot names: `20261124T180501`, with `-<seq>`
    /// for the second and later run of the same second.
    pub fn short(&self) -> String {
        let mut s = self.0[..18].replace(['-', 'Z'], "");
        if let Some((_, seq)) = self.0.rsplit_once('.') {
            if !seq.is_empty() && seq.chars().all(|c| c.is_ascii_digit()) {
                s.push('-');
                s.push_str(seq);
            }
        }
        s
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// File name of a container's archive.
pub fn archive_name(id: &ContainerId, c: Compression) -> String {
    format!("{id}.{}", c.extension())
}

/// File name of a container's memory dump.
pub fn dump_name(id: &ContainerId) -> String {
    format!("{id}.dump")
}

/// File name of a container's saved config.
pub fn config_name(id: &ContainerId) -> String {
    format!("{id}.conf")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn run_ids_sort_by_time_and_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 24, 18, 5, 1).unwrap();
        let a = RunId::new(t, "host-1", 1);
        assert_eq!(a.as_str(), "2026-11-24T180501Z-host-1");
        assert_eq!(RunId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.short(), "20261124T180501");
        let b = RunId::new(t, "host-1", 2);
        assert_eq!(b.as_str(), "2026-11-24T180501Z-host-1.2");
        assert_eq!(b.short(), "20261124T180501-2");
        assert!(RunId::parse("notes").is_none());
        assert!(RunId::parse("2026-13-24T180501Z-h").is_none());
        assert_eq!(
            RunId::new(t, "we/ird host", 1).as_str(),
            "2026-11-24T180501Z-we_ird_host"
        );
    }
}
