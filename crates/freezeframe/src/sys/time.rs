//! Points in time as the kernel takes them: seconds and nanoseconds since
//! the Unix epoch with the nanoseconds always in `0..1_000_000_000`, so
//! that -1.5 s is (-2 s, 500 000 000 ns). Every conversion goes through
//! [`Timestamp`]: a time before 1970 with a fraction, handed on with a
//! negative nanosecond part, is what `utimensat` refuses with EINVAL.

use std::time::{SystemTime, UNIX_EPOCH};

const NS: i128 = 1_000_000_000;

/// Seconds and normalised nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds, rounded towards minus infinity.
    pub sec: i64,
    /// Nanoseconds after `sec`, `0..1_000_000_000`.
    pub nsec: u32,
}

impl Timestamp {
    /// From seconds and nanoseconds in any form (a negative or oversized
    /// nanosecond part is carried into the seconds).
    pub fn new(sec: i64, nsec: i64) -> Self {
        Self::from_ns(i128::from(sec) * NS + i128::from(nsec))
    }

    /// From nanoseconds since the epoch (saturating at `i64` seconds).
    pub fn from_ns(ns: i128) -> Self {
        let sec = ns.div_euclid(NS);
        let nsec = ns.rem_euclid(NS);
        match i64::try_from(sec) {
            Ok(sec) => Self {
                sec,
                nsec: nsec as u32,
            },
            Err(_) if sec < 0 => Self {
                sec: i64::MIN,
                nsec: 0,
            },
            Err(_) => Self {
                sec: i64::MAX,
                nsec: 999_999_999,
            },
        }
    }

    /// Nanoseconds since the epoch.
    pub fn as_ns(self) -> i128 {
        i128::from(self.sec) * NS + i128::from(self.nsec)
    }

    /// A wall-clock time.
    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self::from_ns(d.as_nanos() as i128),
            Err(e) => Self::from_ns(-(e.duration().as_nanos() as i128)),
        }
    }

    /// As a pax record value: `-1.500000000` for -1.5 s (the sign applies
    /// to the whole value, as GNU tar writes it).
    pub fn to_pax(self) -> String {
        let ns = self.as_ns();
        let sign = if ns < 0 { "-" } else { "" };
        let abs = ns.unsigned_abs();
        format!("{sign}{}.{:09}", abs / NS as u128, abs % NS as u128)
    }

    /// Parses a pax time (`1700000000`, `1700000000.5`, `-1.5`); `None`
    /// for anything else.
    pub fn parse_pax(s: &str) -> Option<Self> {
        let (neg, s) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) {
            return None;
        }
        let sec: i128 = whole.parse().ok()?;
        // Beyond nanoseconds the digits do not count.
        let mut ns_text: String = frac.chars().take(9).collect();
        while ns_text.len() < 9 {
            ns_text.push('0');
        }
        let ns: i128 = ns_text.parse().ok()?;
        let total = sec.checked_mul(NS)?.checked_add(ns)?;
        Some(Self::from_ns(if neg { -total } else { total }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_fractions_are_carried_into_the_seconds() {
        // What jiff and others give for 1969-12-31 23:59:58.5: -1 s and
        // -500 000 000 ns.
        let t = Timestamp::new(-1, -500_000_000);
        assert_eq!((t.sec, t.nsec), (-2, 500_000_000));
        assert_eq!(Timestamp::new(-2, 500_000_000), t);
        assert_eq!(
            Timestamp::new(5, 1_500_000_000),
            Timestamp::new(6, 500_000_000)
        );
        assert_eq!(t.as_ns(), -1_500_000_000);
    }

    #[test]
    fn pax_text_round_trips() {
        for (sec, nsec, text) in [
            (1_700_000_000, 5, "1700000000.000000005"),
            (-2, 500_000_000, "-1.500000000"),
            (-2, 0, "-2.000000000"),
            (0, 0, "0.000000000"),
            (-1, 999_999_999, "-0.000000001"),
            // After 2038 and far before 1970.
            (4_102_444_800, 123_456_789, "4102444800.123456789"),
            (-2_208_988_800, 1, "-2208988799.999999999"),
        ] {
            let t = Timestamp::new(sec, nsec);
            assert_eq!(t.to_pax(), text, "{sec} {nsec}");
            assert_eq!(Timestamp::parse_pax(text), Some(t), "{text}");
        }
        assert_eq!(Timestamp::parse_pax("42"), Some(Timestamp::new(42, 0)));
        assert_eq!(
            Timestamp::parse_pax("1.1234567891"),
            Some(Timestamp::new(1, 123_456_789))
        );
        for bad in ["", "x", "-", "1.-5", "1.5x", "--1", ".5", "1e9"] {
            assert_eq!(Timestamp::parse_pax(bad), None, "{bad}");
        }
    }

    #[test]
    fn extremes_saturate() {
        let huge = format!("{}", u128::MAX);
        assert_eq!(Timestamp::parse_pax(&huge), None);
        let t = Timestamp::parse_pax("99999999999999999999").unwrap();
        assert_eq!(t.sec, i64::MAX);
    }
}
