//! Byte or block ranges as sorted, merged `[start, end)` pairs.

/// `ranges` sorted, with every two that overlap or touch made one.
pub fn merged(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_touching_ranges_become_one() {
        assert_eq!(
            merged(vec![(10, 20), (0, 5), (5, 7), (15, 30), (40, 41)]),
            vec![(0, 7), (10, 30), (40, 41)]
        );
        assert_eq!(merged(vec![(3, 9), (4, 5)]), vec![(3, 9)]);
        assert!(merged(Vec::new()).is_empty());
    }
}
