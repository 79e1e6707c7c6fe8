//! Which bytes of a file differ between two thin snapshots, from where
//! its extents lie in each (`FIEMAP`) and which pool blocks differ
//! (`thin_delta`): a pure function, property-tested.
//!
//! Why it is sound: at a file offset where both snapshots map the file to
//! the same device offset, and the pool block holding that offset is not
//! in the delta, both devices read the same data block, so the bytes are
//! equal. Both holes read zeros. Anything else (different placement: a
//! rewrite, a reflink, a shifted range; one side a hole; one side
//! unwritten) counts as changed. Extents whose bytes are not plainly on
//! the device (inline, encoded, delayed, unaligned tails) make the file
//! uncertain, and it is read whole.

use super::delta::ThinDelta;
use crate::sys::fiemap::{
    Extent, DATA_ENCRYPTED, DATA_INLINE, DATA_TAIL, DELALLOC, ENCODED, NOT_ALIGNED, UNKNOWN,
    UNWRITTEN,
};
use crate::sys::ranges::merged;

/// Flags that make an extent's device offset meaningless for us.
const UNCERTAIN: u32 =
    UNKNOWN | DELALLOC | ENCODED | DATA_ENCRYPTED | NOT_ALIGNED | DATA_INLINE | DATA_TAIL;

/// The extent of `map` (sorted, not overlapping) holding `at`, from index
/// `i` on (advanced past extents that end before `at`).
fn at_offset<'a>(map: &'a [Extent], i: &mut usize, at: u64) -> Option<&'a Extent> {
    while *i < map.len() && map[*i].logical + map[*i].length <= at {
        *i += 1;
    }
    map.get(*i).filter(|e| e.logical <= at)
}

fn check(map: &[Extent]) -> Result<(), String> {
    let mut end = 0u64;
    for e in map {
        if e.flags & UNCERTAIN != 0 {
            return Err(format!(
                "an extent at {} has flags {:#x} (inline, encoded or not yet placed)",
                e.logical, e.flags
            ));
        }
        let Some(e_end) = e.logical.checked_add(e.length) else {
            return Err(format!("an extent at {} runs past 2^64", e.logical));
        };
        if e.logical < end || e.physical.checked_add(e.length).is_none() {
            return Err(format!(
                "extents overlap or are out of order at {}",
                e.logical
            ));
        }
        end = e_end;
    }
    Ok(())
}

/// The sorted, merged `[start, end)` byte ranges of the file (of
/// `new_size` bytes now, `base_size` in the base) that may differ from
/// the base, given each snapshot's extents and the pool's delta; `Err`
/// says why the extents cannot be trusted.
pub fn changed_ranges(
    base: &[Extent],
    new: &[Extent],
    base_size: u64,
    new_size: u64,
    delta: &ThinDelta,
) -> Result<Vec<(u64, u64)>, String> {
    check(base)?;
    check(new)?;
    let common = base_size.min(new_size);
    let mut cuts: Vec<u64> = vec![0, common];
    for e in base.iter().chain(new) {
        cuts.push(e.logical.min(common));
        cuts.push((e.logical + e.length).min(common));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut push = |s: u64, e: u64| out.push((s, e));
    let (mut bi, mut ni) = (0, 0);
    let mut in_delta = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (eb, en) = (at_offset(base, &mut bi, a), at_offset(new, &mut ni, a));
        match (eb, en) {
            (None, None) => {}
            (Some(eb), Some(en)) => {
                let pb = eb.physical + (a - eb.logical);
                let pn = en.physical + (a - en.logical);
                if pb != pn || (eb.flags & UNWRITTEN) != (en.flags & UNWRITTEN) {
                    push(a, b);
                    continue;
                }
                in_delta.clear();
                delta.changed_bytes(pn, pn + (b - a), &mut in_delta);
                for &(s, e) in &in_delta {
                    push(a + (s - pn), a + (e - pn));
                }
            }
            _ => push(a, b),
        }
    }
    if new_size > common {
        push(common, new_size);
    }
    Ok(merged(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: u64 = 65536;

    fn ext(logical: u64, physical: u64, length: u64) -> Extent {
        Extent {
            logical,
            physical,
            length,
            flags: 0,
        }
    }

    fn delta(changed: Vec<(u64, u64)>) -> ThinDelta {
        ThinDelta {
            block_bytes: B,
            left: 1,
            right: 2,
            changed,
        }
    }

    #[test]
    fn an_overwrite_in_place_is_the_pool_block_it_lies_in() {
        let m = [ext(0, 100 * B, 16 * B)];
        let got = changed_ranges(&m, &m, 16 * B, 16 * B, &delta(vec![(103, 104)])).unwrap();
        assert_eq!(got, vec![(3 * B, 4 * B)]);
    }

    #[test]
    fn an_append_a_moved_range_and_a_truncation() {
        let base = [ext(0, 100 * B, 4 * B)];
        // Appended at a new place: only the tail is new.
        let new = [ext(0, 100 * B, 4 * B), ext(4 * B, 500 * B, 2 * B)];
        let d = delta(vec![(500, 502)]);
        assert_eq!(
            changed_ranges(&base, &new, 4 * B, 6 * B, &d).unwrap(),
            vec![(4 * B, 6 * B)]
        );
        // The same bytes moved elsewhere (a reflink, a shift): changed,
        // though no pool block of the old place changed.
        let moved = [ext(0, 200 * B, 4 * B)];
        assert_eq!(
            changed_ranges(&base, &moved, 4 * B, 4 * B, &delta(vec![])).unwrap(),
            vec![(0, 4 * B)]
        );
        // Truncated: nothing past the new size is reported.
        assert_eq!(
            changed_ranges(&base, &base, 4 * B, 2 * B + 5, &delta(vec![(103, 104)])).unwrap(),
            Vec::<(u64, u64)>::new()
        );
    }

    #[test]
    fn holes_and_unwritten_extents() {
        let base = [ext(0, 100 * B, 4 * B)];
        // A hole punched in the middle.
        let new = [ext(0, 100 * B, B), ext(3 * B, 103 * B, B)];
        assert_eq!(
            changed_ranges(&base, &new, 4 * B, 4 * B, &delta(vec![])).unwrap(),
            vec![(B, 3 * B)]
        );
        // Holes on both sides: unchanged.
        assert!(changed_ranges(&new, &new, 4 * B, 4 * B, &delta(vec![]))
            .unwrap()
            .is_empty());
        // The same place, but now unwritten (zeroed by fallocate).
        let mut z = new;
        z[1].flags = UNWRITTEN;
        assert_eq!(
            changed_ranges(&new, &z, 4 * B, 4 * B, &delta(vec![])).unwrap(),
            vec![(3 * B, 4 * B)]
        );
        let inline = [Extent {
            flags: DATA_INLINE,
            ..ext(0, 0, 60)
        }];
        assert!(changed_ranges(&inline, &inline, 60, 60, &delta(vec![])).is_err());
        let overlapping = [ext(0, 0, 2 * B), ext(B, 9 * B, B)];
        assert!(changed_ranges(&overlapping, &base, 4 * B, 4 * B, &delta(vec![])).is_err());
    }

    /// A toy device of 64 blocks: writes go to fresh pool blocks (as the
    /// pool does), files are extent lists; the ranges must cover every
    /// byte whose content differs, on random edits.
    #[test]
    fn every_byte_that_differs_is_in_a_range_on_random_edits() {
        const PAGE: u64 = 4096;
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            // Pages of the file: Some(device page) or a hole; content of a
            // device page is its "version" number.
            let pages = 8 + rnd(40);
            let mut dev_version: Vec<u64> = (0..1024).collect();
            let mut file: Vec<Option<u64>> =
                (0..pages).map(|i| (rnd(5) > 0).then_some(i * 3)).collect();
            let before = file.clone();
            let content_before: Vec<Option<u64>> = before
                .iter()
                .map(|p| p.map(|d| dev_version[d as usize]))
                .collect();
            let mut changed_blocks = Vec::new();
            for _ in 0..rnd(6) {
                let i = rnd(pages) as usize;
                match rnd(4) {
                    // Overwrite in place: the device page's content changes.
                    0 => {
                        if let Some(d) = file[i] {
                            dev_version[d as usize] += 10_000;
                            changed_blocks.push(d * PAGE / B);
                        }
                    }
                    // Moved to another device page (rewrite or reflink)
                    // that was not written.
                    1 => file[i] = Some(600 + rnd(400)),
                    2 => file[i] = None,
                    _ => {
                        let d = 300 + rnd(200);
                        dev_version[d as usize] += 20_000;
                        changed_blocks.push(d * PAGE / B);
                        file[i] = Some(d);
                    }
                }
            }
            let to_map = |f: &[Option<u64>]| -> Vec<Extent> {
                f.iter()
                    .enumerate()
                    .filter_map(|(i, p)| p.map(|d| ext(i as u64 * PAGE, d * PAGE, PAGE)))
                    .collect()
            };
            let mut blocks: Vec<(u64, u64)> = changed_blocks.iter().map(|&b| (b, b + 1)).collect();
            blocks.sort_unstable();
            blocks.dedup();
            let got = changed_ranges(
                &to_map(&before),
                &to_map(&file),
                pages * PAGE,
                pages * PAGE,
                &delta(blocks),
            )
            .unwrap();
            for i in 0..pages as usize {
                let now = file[i].map(|d| dev_version[d as usize]);
                if now != content_before[i] {
                    let at = i as u64 * PAGE;
                    assert!(
                        got.iter().any(|&(s, e)| s <= at && at + PAGE <= e),
                        "page {i} differs but is not in {got:?}"
                    );
                }
            }
        }
    }
}
