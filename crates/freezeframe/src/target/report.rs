//! What a command found, ready to print: as text for a terminal, as JSON
//! for scripts. Each kind of target shapes its own listing; the CLI prints
//! whatever it is given.

/// A command's findings.
pub trait Report {
    /// As JSON.
    fn to_json(&self) -> serde_json::Value;
    /// As lines of text.
    fn to_text(&self) -> String;
    /// Whether it found damage (`verify`: exit 1).
    fn damaged(&self) -> bool {
        false
    }
}

/// `1.5 GiB`, `300 MiB`, `12 B`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(12), "12 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(300 << 20), "300.0 MiB");
    }
}
