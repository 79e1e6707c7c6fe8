//! What the backup tells its guardian: one JSON object per line on the
//! guardian's stdin. A line that does not decode is an error the guardian
//! acts on (it thaws), never a default.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One message from the backup to its guardian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Message {
    /// A freeze window opened: everything must be thawed by this instant
    /// (milliseconds since the Unix epoch, wall clock: absolute, so a slow
    /// pipe cannot stretch the window).
    Open {
        /// The deadline.
        deadline_unix_ms: u64,
    },
    /// The window closed: everything is thawed.
    Close,
    /// The run ended cleanly: nothing is left to undo.
    Done,
}

/// A line that is not a [`Message`].
#[derive(Debug, thiserror::Error)]
#[error("unreadable message `{line}` from the backup: {source}")]
pub struct DecodeError {
    /// The line, cut to a readable length.
    pub line: String,
    /// What was wrong with it.
    #[source]
    pub source: serde_json::Error,
}

impl Message {
    /// The window of `deadline`.
    pub fn open(deadline: SystemTime) -> Self {
        let ms = deadline
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Message::Open {
            deadline_unix_ms: ms,
        }
    }

    /// The message as one line, newline included.
    pub fn encode(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a message always serializes");
        s.push('\n');
        s
    }

    /// Reads one line (without its newline).
    pub fn decode(line: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(line).map_err(|source| DecodeError {
            line: line.chars().take(120).collect(),
            source,
        })
    }
}

/// How long from `now` until the deadline `deadline_unix_ms`; zero when it
/// has passed.
pub fn remaining(deadline_unix_ms: u64, now: SystemTime) -> Duration {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_unix_ms);
    deadline.duration_since(now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        for m in [Message::open(at), Message::Close, Message::Done] {
            let line = m.encode();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(Message::decode(line.trim_end()).unwrap(), m);
        }
        assert_eq!(
            Message::open(at).encode(),
            "{\"msg\":\"open\",\"deadline_unix_ms\":1800000000123}\n"
        );
    }

    #[test]
    fn anything_else_is_an_error_not_a_default() {
        for bad in [
            "open 10000",
            "{\"msg\":\"open\"}",
            "{\"msg\":\"open\",\"deadline_unix_ms\":\"soon\"}",
            "{\"msg\":\"open\",\"deadline_unix_ms\":-5}",
            "{\"msg\":\"open\",\"deadline_unix_ms\":1,\"extra\":1}",
            "{\"msg\":\"reboot\"}",
            "",
        ] {
            let e = Message::decode(bad).unwrap_err();
            assert!(e.to_string().contains("unreadable message"), "{bad}: {e}");
        }
        let long = "x".repeat(10_000);
        assert!(Message::decode(&long).unwrap_err().line.len() <= 120);
    }

    #[test]
    fn remaining_time_counts_from_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(remaining(1_000_250, now), Duration::from_millis(250));
        assert_eq!(remaining(999_000, now), Duration::ZERO);
        assert_eq!(remaining(0, now), Duration::ZERO);
    }
}
