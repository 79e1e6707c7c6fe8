//! `[retention]`: the keep policy `prune` (and `backup --prune`) applies
//! when the command line gives none. Plain counts; the policy itself is
//! the target layer's (`target::retention`).

use serde::{Deserialize, Serialize};

/// Keep rules, applied to each container's backups separately: a backup is
/// kept if any rule holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// The newest N.
    #[serde(rename = "keep_last", skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    /// The newest of each of the last N hours that have one.
    #[serde(rename = "keep_hourly", skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    /// The newest of each of the last N days that have one.
    #[serde(rename = "keep_daily", skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    /// The newest of each of the last N weeks (ISO weeks).
    #[serde(rename = "keep_weekly", skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    /// The newest of each of the last N months.
    #[serde(rename = "keep_monthly", skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    /// The newest of each of the last N years.
    #[serde(rename = "keep_yearly", skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

impl Retention {
    fn counts(&self) -> [Option<u32>; 6] {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
    }

    /// Whether any rule is set (prune refuses to run with none).
    pub fn is_set(&self) -> bool {
        self.counts().iter().any(Option::is_some)
    }

    /// Whether the policy keeps anything at all: some rule is above 0.
    /// `--keep-last 0` alone would forget every backup.
    pub fn keeps_something(&self) -> bool {
        self.counts().iter().any(|n| n.is_some_and(|n| n > 0))
    }

    /// Each rule given in `over` replaces this one's (the command line
    /// over `[retention]`).
    pub fn overridden_by(&self, over: &Retention) -> Retention {
        Retention {
            last: over.last.or(self.last),
            hourly: over.hourly.or(self.hourly),
            daily: over.daily.or(self.daily),
            weekly: over.weekly.or(self.weekly),
            monthly: over.monthly.or(self.monthly),
            yearly: over.yearly.or(self.yearly),
        }
    }
}
