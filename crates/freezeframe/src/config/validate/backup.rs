//! `[backup]`: the defaults of every run, each bounded.

use std::time::Duration;

use super::{bounded_duration, line_of, Invalid};
use crate::config::model::{BackupDefaults, Compression, Mode, Strategy};
use crate::config::raw::RawBackup;

/// Most containers archived at once (`backup.jobs`, `--jobs`).
pub const MAX_JOBS: usize = 256;
/// Shortest and longest freeze a window may take before it is undone.
const FREEZE_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(3600));

/// The `[backup]` table.
pub(super) fn backup(raw: RawBackup, text: &str) -> Result<BackupDefaults, Invalid> {
    let compress = raw.compress.unwrap_or(Compression::Zstd);
    if let Some(level) = &raw.level {
        compress.check_level(*level.get_ref()).map_err(|m| {
            (
                line_of(text, level.span().start),
                format!("backup.level: {m}"),
            )
        })?;
    }
    let jobs = match raw.jobs {
        Some(j) => {
            let line = line_of(text, j.span().start);
            let j = *j.get_ref();
            if j > MAX_JOBS as u64 {
                return Err((
                    line,
                    format!(
                        "backup.jobs = {j} is out of range: allowed 0 (half the cores) to {MAX_JOBS} containers archived at once"
                    ),
                ));
            }
            j as usize
        }
        None => 0,
    };
    let freeze_timeout = bounded_duration(
        text,
        raw.freeze_timeout,
        "backup.freeze_timeout",
        FREEZE_TIMEOUT_RANGE,
        Duration::from_secs(10),
    )?;
    let backup = BackupDefaults {
        mode: raw.mode.unwrap_or(Mode::Snapshot),
        strategy: raw.strategy.unwrap_or(Strategy::Group),
        compress,
        level: raw.level.map(|l| l.into_inner()),
        jobs,
        freeze_timeout,
    };
    Ok(backup)
}
