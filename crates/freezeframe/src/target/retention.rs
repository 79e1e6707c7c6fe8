//! The keep policy of `prune`, the same for both kinds of target, as a pure
//! function of the backups and the clock's time zone: per container,
//! newest first, a backup is kept if any rule holds it (restic's `forget
//! --keep-*` semantics), and the newest complete backup of a container is
//! always kept.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use serde::Serialize;

pub use crate::config::Retention;

/// The rules of a policy with their counts.
fn rules(r: &Retention) -> [(Rule, Option<u32>); 6] {
    [
        (Rule::Last, r.last),
        (Rule::Hourly, r.hourly),
        (Rule::Daily, r.daily),
        (Rule::Weekly, r.weekly),
        (Rule::Monthly, r.monthly),
        (Rule::Yearly, r.yearly),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A bucket of time: backups in one bucket count once for a rule.
type Bucket = (i32, u32, u32, u32);

impl Rule {
    fn reason(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    fn bucket(self, t: &NaiveDateTime, seq: usize) -> Bucket {
        match self {
            // Every backup is its own bucket.
            Rule::Last => (0, 0, 0, seq as u32),
            Rule::Hourly => (t.year(), t.ordinal(), t.hour(), 0),
            Rule::Daily => (t.year(), t.ordinal(), 0, 0),
            Rule::Weekly => {
                let w = t.iso_week();
                (w.year(), w.week(), 0, 0)
            }
            Rule::Monthly => (t.year(), t.month(), 0, 0),
            Rule::Yearly => (t.year(), 0, 0, 0),
        }
    }
}

/// One backup of one container, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// What identifies it (a run id, a snapshot id).
    pub id: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Complete (`ok`), not partial.
    pub complete: bool,
}

/// A backup's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The candidate's id.
    pub id: String,
    /// Kept?
    pub keep: bool,
    /// The rules that keep it (`last`, `daily`, …, `newest complete`).
    pub reasons: Vec<String>,
}

/// Why the newest complete backup is always kept.
pub const NEWEST_COMPLETE: &str = "newest complete";

/// Applies `policy` to the backups of one container; `local` turns a time
/// into the wall-clock time whose hours, days, weeks, months and years
/// count. Decisions come newest first.
pub fn decide(
    backups: &[Candidate],
    policy: &Retention,
    local: impl Fn(&DateTime<Utc>) -> NaiveDateTime,
) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    // Newest first; equal times by id, so the outcome does not depend on
    // the order the listing came in.
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    let rules = rules(policy);
    let mut left: Vec<u32> = rules.iter().map(|(_, n)| n.unwrap_or(0)).collect();
    let mut last_bucket: Vec<Option<Bucket>> = vec![None; rules.len()];
    let newest_complete = sorted.iter().position(|c| c.complete);
    sorted
        .iter()
        .enumerate()
        .map(|(seq, c)| {
            let t = local(&c.time);
            let mut reasons = Vec::new();
            for (i, (rule, _)) in rules.iter().enumerate() {
                let bucket = rule.bucket(&t, seq);
                if left[i] > 0 && last_bucket[i] != Some(bucket) {
                    left[i] -= 1;
                    last_bucket[i] = Some(bucket);
                    reasons.push(rule.reason().to_owned());
                }
            }
            if Some(seq) == newest_complete {
                reasons.push(NEWEST_COMPLETE.to_owned());
            }
            Decision {
                id: c.id.clone(),
                keep: !reasons.is_empty(),
                reasons,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
    }

    fn cands(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .map(|t| Candidate {
                id: (*t).to_owned(),
                time: at(t),
                complete: true,
            })
            .collect()
    }

    fn kept(c: &[Candidate], p: Retention) -> Vec<String> {
        decide(c, &p, |t| t.naive_utc())
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.id)
            .collect()
    }

    const TIMES: [&str; 8] = [
        "2026-11-01 10:00", // Sunday, ISO week 44
        "2026-11-02 09:00", // Monday, week 45
        "2026-11-02 18:00",
        "2026-11-03 09:00",
        "2026-11-03 09:30",
        "2026-11-09 09:00", // week 46
        "2026-11-10 09:00",
        "2026-11-10 21:00",
    ];

    fn policy(f: fn(&mut Retention)) -> Retention {
        let mut r = Retention::default();
        f(&mut r);
        r
    }

    #[test]
    fn each_rule_keeps_the_newest_of_its_buckets() {
        let c = cands(&TIMES);
        for (p, want) in [
            (
                policy(|r| r.last = Some(2)),
                vec!["2026-11-10 21:00", "2026-11-10 09:00"],
            ),
            (
                policy(|r| r.hourly = Some(3)),
                vec!["2026-11-10 21:00", "2026-11-10 09:00", "2026-11-09 09:00"],
            ),
            (
                policy(|r| r.daily = Some(3)),
                vec!["2026-11-10 21:00", "2026-11-09 09:00", "2026-11-03 09:30"],
            ),
            (
                policy(|r| r.weekly = Some(2)),
                vec!["2026-11-10 21:00", "2026-11-03 09:30"],
            ),
            (policy(|r| r.monthly = Some(5)), vec!["2026-11-10 21:00"]),
            (policy(|r| r.yearly = Some(1)), vec!["2026-11-10 21:00"]),
            (
                policy(|r| {
                    r.daily = Some(2);
                    r.weekly = Some(3);
                }),
                vec![
                    "2026-11-10 21:00",
                    "2026-11-09 09:00",
                    "2026-11-03 09:30",
                    "2026-11-01 10:00",
                ],
            ),
            // 09:00 and 09:30 share an hour: only the newer counts.
            (
                policy(|r| r.hourly = Some(8)),
                vec![
                    "2026-11-10 21:00",
                    "2026-11-10 09:00",
                    "2026-11-09 09:00",
                    "2026-11-03 09:30",
                    "2026-11-02 18:00",
                    "2026-11-02 09:00",
                    "2026-11-01 10:00",
                ],
            ),
        ] {
            assert_eq!(kept(&c, p), want, "{p:?}");
        }
    }

    #[test]
    fn reasons_name_every_rule_that_holds_a_backup() {
        let c = cands(&TIMES);
        let d = decide(
            &c,
            &Retention {
                last: Some(1),
                daily: Some(1),
                ..Default::default()
            },
            |t| t.naive_utc(),
        );
        assert_eq!(d[0].reasons, ["last", "daily", NEWEST_COMPLETE]);
        assert!(d[1..].iter().all(|d| !d.keep && d.reasons.is_empty()));
    }

    #[test]
    fn the_newest_complete_backup_survives_any_policy() {
        let mut c = cands(&TIMES);
        // The three newest are partial: the fourth is the newest complete.
        for x in &mut c[5..] {
            x.complete = false;
        }
        let d = decide(&c, &policy(|r| r.last = Some(1)), |t| t.naive_utc());
        let keep: Vec<(&str, Vec<String>)> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| (d.id.as_str(), d.reasons.clone()))
            .collect();
        assert_eq!(
            keep,
            [
                ("2026-11-10 21:00", vec!["last".to_owned()]),
                ("2026-11-03 09:30", vec![NEWEST_COMPLETE.to_owned()]),
            ]
        );
        // The order of the listing does not matter.
        let mut rev = c.clone();
        rev.reverse();
        assert_eq!(
            decide(&rev, &Retention::default(), |t| t.naive_utc()),
            decide(&c, &Retention::default(), |t| t.naive_utc())
        );
    }

    #[test]
    fn local_time_decides_the_day() {
        // 23:30 UTC is the next day at UTC+1.
        let c = cands(&["2026-11-01 23:30", "2026-11-01 22:30"]);
        let daily = policy(|r| r.daily = Some(2));
        assert_eq!(kept(&c, daily).len(), 1, "same UTC day");
        let plus1 = |t: &DateTime<Utc>| t.naive_utc() + chrono::Duration::hours(1);
        let d: Vec<bool> = decide(&c, &daily, plus1).iter().map(|d| d.keep).collect();
        assert_eq!(d, [true, true], "two days at UTC+1");
    }

    #[test]
    fn a_policy_of_zeros_keeps_nothing() {
        assert!(!Retention::default().is_set());
        let zero = Retention {
            last: Some(0),
            daily: Some(0),
            ..Default::default()
        };
        assert!(zero.is_set() && !zero.keeps_something());
        assert!(Retention {
            hourly: Some(1),
            ..zero
        }
        .keeps_something());
    }
}
