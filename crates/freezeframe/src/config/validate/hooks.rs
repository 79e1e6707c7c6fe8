//! `[hooks]`: a command per phase, and how long one may run.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{bounded_duration, Invalid};
use crate::config::model::HooksConfig;
use crate::config::raw::RawHooks;
use crate::sys::HookPhase;

/// Shortest and longest a hook may run before it is killed.
const HOOK_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

/// The `[hooks]` table.
pub(super) fn hooks(h: RawHooks, text: &str) -> Result<HooksConfig, Invalid> {
    let commands: BTreeMap<HookPhase, String> = [
        (HookPhase::JobStart, h.job_start),
        (HookPhase::BackupStart, h.backup_start),
        (HookPhase::PreFreeze, h.pre_freeze),
        (HookPhase::PostThaw, h.post_thaw),
        (HookPhase::BackupEnd, h.backup_end),
        (HookPhase::BackupFailed, h.backup_failed),
        (HookPhase::JobEnd, h.job_end),
        (HookPhase::JobFailed, h.job_failed),
        (HookPhase::Finally, h.finally),
    ]
    .into_iter()
    .filter_map(|(p, c)| c.map(|c| (p, c)))
    .collect();
    let hooks = HooksConfig {
        timeout: bounded_duration(
            text,
            h.timeout,
            "hooks.timeout",
            HOOK_TIMEOUT_RANGE,
            Duration::from_secs(60),
        )?,
        commands,
    };
    Ok(hooks)
}
