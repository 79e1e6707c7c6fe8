//! Snapshot names: `ff-<run>-<volume>` (one per freeze window of a volume)
//! or `ff-<run>-<volume>-<container>` (strategy `each`), where `<run>` is
//! the run's short id `YYYYMMDDTHHMMSS[-N]`. Only a name of exactly this
//! form, for the very volume being swept, is ever considered ours.

use super::SNAPSHOT_PREFIX;
use crate::config::ContainerId;

/// The name of the snapshot of `volume` taken by run `run_short` (see
/// `RunId::short`), for one container (`Some`, strategy `each`) or the
/// whole freeze window of the volume.
pub fn snapshot_name(run_short: &str, volume: &str, container: Option<&ContainerId>) -> String {
    match container {
        None => format!("{SNAPSHOT_PREFIX}{run_short}-{volume}"),
        Some(ct) => format!("{SNAPSHOT_PREFIX}{run_short}-{volume}-{ct}"),
    }
}

/// The names a snapshot of `volume` by run `run_short` may take, in the
/// order to try them: the run's own, then with a higher sequence number
/// (`-2`, `-3`, …) for when another config on this host, whose run started
/// in the same second, took the name already.
pub fn candidates<'a>(
    run_short: &'a str,
    volume: &'a str,
    container: Option<&'a ContainerId>,
) -> impl Iterator<Item = String> + 'a {
    let (ts, first) = match run_short.split_once('-') {
        Some((ts, seq)) => (ts, seq.parse::<u32>().unwrap_or(1)),
        None => (run_short, 1),
    };
    (first..first + 100).map(move |seq| {
        let run = if seq > 1 {
            format!("{ts}-{seq}")
        } else {
            ts.to_owned()
        };
        snapshot_name(&run, volume, container)
    })
}

/// `YYYYMMDDTHHMMSS`: 15 characters, a `T` after the date.
fn is_timestamp(s: &str) -> bool {
    s.len() == 15
        && s.char_indices()
            .all(|(i, c)| if i == 8 { c == 'T' } else { c.is_ascii_digit() })
}

/// `<volume>` or `<volume>-<container id>`.
fn is_volume_part(s: &str, volume: &str) -> bool {
    match s.strip_prefix(volume) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('-')
            .is_some_and(|id| ContainerId::new(id).is_ok()),
        None => false,
    }
}

/// Whether `name` has the exact form [`snapshot_name`] gives for `volume`.
pub fn is_snapshot_name(name: &str, volume: &str) -> bool {
    let Some(rest) = name.strip_prefix(SNAPSHOT_PREFIX) else {
        return false;
    };
    if !rest.is_char_boundary(15) || !is_timestamp(&rest[..15]) {
        return false;
    }
    let Some(after) = rest[15..].strip_prefix('-') else {
        return false;
    };
    if is_volume_part(after, volume) {
        return true;
    }
    // A second run in the same second: `-<seq>` after the time.
    match after.split_once('-') {
        Some((seq, tail)) if !seq.is_empty() && seq.chars().all(|c| c.is_ascii_digit()) => {
            is_volume_part(tail, volume)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_their_volume_only() {
        let ct = ContainerId::new("101").unwrap();
        for short in ["20261124T180501", "20261124T180501-2"] {
            for name in [
                snapshot_name(short, "data", None),
                snapshot_name(short, "data", Some(&ct)),
            ] {
                assert!(is_snapshot_name(&name, "data"), "{name}");
                assert!(!is_snapshot_name(&name, "other"), "{name}");
                assert!(!is_snapshot_name(&name, "dat"), "{name}");
            }
        }
        assert!(is_snapshot_name("ff-20261124T180501-my-vol", "my-vol"));
    }

    #[test]
    fn candidates_count_up_from_the_runs_own_sequence() {
        let c: Vec<String> = candidates("20261124T180501", "v", None).take(3).collect();
        assert_eq!(
            c,
            [
                "ff-20261124T180501-v",
                "ff-20261124T180501-2-v",
                "ff-20261124T180501-3-v"
            ]
        );
        let ct = ContainerId::new("101").unwrap();
        let c: Vec<String> = candidates("20261124T180501-4", "v", Some(&ct))
            .take(2)
            .collect();
        assert_eq!(
            c,
            ["ff-20261124T180501-4-v-101", "ff-20261124T180501-5-v-101"]
        );
        assert!(c.iter().all(|n| is_snapshot_name(n, "v")));
    }

    #[test]
    fn user_names_are_not_ours() {
        for name in [
            "ff-userdata",
            "ff-data",
            "ff-2026-data",
            "ff-20261124T180501",
            "ff-20261124T180501-",
            "ff-20261124T180501data",
            "ff-20261124X180501-data",
            "ff-20261124T180501-data-",
            "ff-20261124T180501-data-.hidden",
            "ff-20261124T180501-x-data",
            "xff-20261124T180501-data",
            "ff-20261124T180501-data.owner",
            "ff-2026112éT180501-data",
        ] {
            assert!(!is_snapshot_name(name, "data"), "{name}");
        }
    }
}
