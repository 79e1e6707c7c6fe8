//! Retention policy for `prune`: how many snapshots to keep per container.

use serde::Serialize;

/// Keep rules, applied to each container's snapshots separately (as
/// restic's `forget --keep-*`: a snapshot is kept if any rule holds it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// The newest N.
    pub last: Option<u32>,
    /// The newest of each of the last N days that have one.
    pub daily: Option<u32>,
    /// The newest of each of the last N weeks.
    pub weekly: Option<u32>,
    /// The newest of each of the last N months.
    pub monthly: Option<u32>,
    /// The newest of each of the last N years.
    pub yearly: Option<u32>,
}

impl Retention {
    /// Whether any rule is set (prune refuses to run with none: it would
    /// forget everything).
    pub fn is_set(&self) -> bool {
        [
            self.last,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .any(Option::is_some)
    }

    /// Whether the policy keeps anything at all: some rule is above 0.
    /// `--keep-last 0` alone would forget every snapshot.
    pub fn keeps_something(&self) -> bool {
        [
            self.last,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .any(|r| r.is_some_and(|n| n > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_of_zeros_keeps_nothing() {
        assert!(!Retention::default().is_set());
        let zero = Retention {
            last: Some(0),
            daily: Some(0),
            ..Default::default()
        };
        assert!(zero.is_set() && !zero.keeps_something());
        let some = Retention {
            last: Some(0),
            weekly: Some(1),
            ..Default::default()
        };
        assert!(some.keeps_something());
    }
}
