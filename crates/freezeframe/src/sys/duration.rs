//! Durations written as `500ms`, `10s` or `2m` in the config.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that reads and prints as `500ms`, `10s`, `2m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// Text that is not a [`HumanDuration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDuration {
    /// No number, or not a number.
    #[error("`{0}` is not a duration: write e.g. `500ms`, `10s`, `2m` or `1h`")]
    NotADuration(String),
    /// A number with a unit that is not one of ours.
    #[error("`{text}`: unknown unit `{unit}`, use `ms`, `s`, `m`, `h` or `d` (e.g. `10s`)")]
    UnknownUnit {
        /// The text.
        text: String,
        /// The unit it named.
        unit: String,
    },
    /// More milliseconds than a `u64` holds.
    #[error("`{0}` is too long a duration")]
    TooLong(String),
}

impl FromStr for HumanDuration {
    type Err = BadDuration;
    fn from_str(s: &str) -> Result<Self, BadDuration> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| BadDuration::NotADuration(s.to_owned()))?;
        let ms_per_unit: u64 = match unit.trim() {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(BadDuration::UnknownUnit {
                    text: s.to_owned(),
                    unit: other.to_owned(),
                })
            }
        };
        let ms = n
            .checked_mul(ms_per_unit)
            .ok_or_else(|| BadDuration::TooLong(s.to_owned()))?;
        Ok(HumanDuration(Duration::from_millis(ms)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(3_600_000) && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_units() {
        for (text, ms, shown) in [
            ("500ms", 500, "500ms"),
            ("10s", 10_000, "10s"),
            ("2m", 120_000, "2m"),
            ("90m", 5_400_000, "90m"),
            ("2h", 7_200_000, "2h"),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_millis(ms));
            assert_eq!(d.to_string(), shown);
        }
    }

    #[test]
    fn rejects_bad_units_with_help() {
        let e = "10w".parse::<HumanDuration>().unwrap_err().to_string();
        assert!(e.contains("use `ms`, `s`, `m`, `h` or `d`"), "{e}");
        assert!("ten".parse::<HumanDuration>().is_err());
        let e = format!("{}h", u64::MAX)
            .parse::<HumanDuration>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("too long"), "{e}");
    }
}
