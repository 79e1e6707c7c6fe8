//! Asking the kernel ahead for the bytes a cut around changes will read.
//! The changes of a large file lie far apart, and each is one short read:
//! read one after the other, each waits for the disk alone. Told a window
//! of the next ones (`posix_fadvise(WILLNEED)`), the disk has many reads
//! under way at once, and the reads themselves find the page cache full.
//! The window is bounded, so a file rewritten whole does not fill the
//! page cache ahead of its reader.

use std::collections::VecDeque;

use super::ReadAt;

/// Bytes asked for ahead of the reader, at most (about).
const WINDOW: u64 = 16 << 20;
/// The most asked for at once: a long region is asked for in pieces.
const PIECE: u64 = WINDOW / 4;

/// The regions still to ask for, and those asked for ahead of the reader.
pub(super) struct Prefetch {
    /// Sorted, disjoint `[start, end)` ranges, split into pieces.
    todo: VecDeque<(u64, u64)>,
    /// Asked for and not yet passed by the reader.
    asked: VecDeque<(u64, u64)>,
}

impl Prefetch {
    /// The prefetch of `regions` (sorted and disjoint).
    pub(super) fn new(regions: Vec<(u64, u64)>) -> Self {
        let mut todo = VecDeque::with_capacity(regions.len());
        for (mut a, e) in regions {
            while a < e {
                let b = e.min(a.saturating_add(PIECE));
                todo.push_back((a, b));
                a = b;
            }
        }
        Self {
            todo,
            asked: VecDeque::new(),
        }
    }

    /// The reader is at `pos`: forgets what lies behind it and asks for
    /// more until a window's worth lies ahead.
    pub(super) fn advance<R: ReadAt + ?Sized>(&mut self, src: &R, pos: u64) {
        while self.asked.front().is_some_and(|&(_, e)| e <= pos) {
            self.asked.pop_front();
        }
        let mut ahead: u64 = self.asked.iter().map(|&(a, e)| e - a.max(pos)).sum();
        while ahead < WINDOW {
            let Some((a, e)) = self.todo.pop_front() else {
                break;
            };
            if e <= pos {
                continue;
            }
            let a = a.max(pos);
            src.will_need(a, e - a);
            self.asked.push_back((a, e));
            ahead += e - a;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;

    use super::*;

    #[derive(Default)]
    struct Asked(RefCell<Vec<(u64, u64)>>);

    impl ReadAt for Asked {
        fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<usize> {
            Ok(0)
        }
        fn will_need(&self, offset: u64, len: u64) {
            self.0.borrow_mut().push((offset, offset + len));
        }
    }

    #[test]
    fn asks_a_bounded_window_ahead_in_order_and_never_behind() {
        let mb = 1 << 20;
        let regions: Vec<(u64, u64)> = (0..100).map(|i| (i * 10 * mb, i * 10 * mb + mb)).collect();
        let src = Asked::default();
        let mut p = Prefetch::new(regions.clone());
        p.advance(&src, 0);
        assert_eq!(*src.0.borrow(), regions[..16]);
        // The reader passes the first five: five more asked for.
        p.advance(&src, 45 * mb);
        assert_eq!(*src.0.borrow(), regions[..21]);
        // Far ahead: what it passed is never asked for.
        p.advance(&src, 985 * mb);
        let want: Vec<(u64, u64)> = regions[..21]
            .iter()
            .chain(&regions[99..])
            .copied()
            .collect();
        assert_eq!(*src.0.borrow(), want);
    }

    #[test]
    fn a_long_region_is_asked_for_in_pieces_within_the_window() {
        let src = Asked::default();
        let mut p = Prefetch::new(vec![(0, 1 << 34)]);
        p.advance(&src, 0);
        let total: u64 = src.0.borrow().iter().map(|(a, e)| e - a).sum();
        assert_eq!(total, WINDOW);
        assert!(src.0.borrow().iter().all(|(a, e)| e - a <= PIECE));
        p.advance(&src, 1 << 20);
        let total: u64 = src.0.borrow().iter().map(|(a, e)| e - a).sum();
        assert_eq!(total, WINDOW + PIECE);
    }
}
