//! Cutting a changed file by reading only around its changes (DESIGN.md
//! §7). The parent snapshot holds the file's blob list as the base had it;
//! the kernel says which byte ranges differ. Where the parent's chunks lie
//! in unchanged bytes they are taken as they are; around each change the
//! file is cut again from the parent chunk boundary before it, until a cut
//! lands on a parent boundary whose chunk is unchanged — from there the
//! cuts of a full read are the parent's again.
//!
//! Why the result is the blob list of a full read: FastCDC ends a chunk
//! where the gear hash of its bytes matches (the byte after the chunk is
//! the last one it looks at), or at the largest chunk, or at the end of
//! the file; how much is left matters only when that is less than the
//! average chunk (the mask changes there). So, from a boundary both reads
//! cut at, a parent chunk whose bytes and next byte are unchanged ends
//! where the parent's did, if the two files have the same length or the
//! chunk starts more than an average chunk before the shorter one's end.
//! Offset 0 is such a boundary, and every chunk cut here starts at one. This needs the
//! parent's list to be FastCDC's with the same bounds (freezeframe's
//! writer); with another chunker the blobs are still right, only the cuts
//! may differ from a full read's.

use std::cell::Cell;
use std::io::{self, Read};

use self::prefetch::Prefetch;
use super::cutter::{Bounds, Cutter};
use super::pack::Hash;

mod prefetch;

/// Reads at a position (`pread`), so one open file serves every region.
pub(crate) trait ReadAt {
    /// Reads into `buf` from `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Says that the reads to come are few and far apart (a file cut only
    /// around its changes): a file turns the kernel's readahead off,
    /// which would otherwise read far more than is asked.
    fn sparse_reads(&self) {}

    /// Says that `len` bytes at `offset` will be read soon: a file asks
    /// the kernel to start reading them, so that many reads are under
    /// way at once instead of one at a time.
    fn will_need(&self, _offset: u64, _len: u64) {}
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let rest = usize::try_from(offset)
            .ok()
            .and_then(|o| self.get(o..))
            .unwrap_or_default();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

/// One chunk of the parent's blob list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParentChunk {
    /// The blob's id.
    pub id: Hash,
    /// Its plain length.
    pub len: u64,
}

/// One chunk of the new blob list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// The parent's blob, unchanged.
    Reused(Hash),
    /// Bytes read and cut again.
    Cut(Vec<u8>),
}

/// Bytes read per refill while cutting around a change, at most: small,
/// so that stopping at a parent boundary wastes little.
const MAX_STEP: usize = 256 << 10;
/// ... and at least: each refill is one more trip to the disk.
const MIN_STEP: usize = 16 << 10;
/// Read past the end of the parent's chunk by the first refill: the
/// chunker must see a byte beyond a cut to take it (a page: a read of
/// less costs the same).
const PAST_CUT: usize = 4 << 10;

/// Bytes per refill for chunks of `bounds`: a quarter of the average.
fn step(bounds: Bounds) -> usize {
    (bounds.avg / 4).clamp(MIN_STEP, MAX_STEP)
}

/// Cuts the file `src` of `len` bytes whose parent blob list is `parent`
/// and whose bytes differ from the parent's only inside `changed` (sorted
/// or not, `[start, end)`; beyond the parent's length everything counts
/// as changed); hands each piece to `emit` in order. Returns the bytes
/// read.
pub(crate) fn recut<R: ReadAt + ?Sized, E: From<io::Error>>(
    src: &R,
    len: u64,
    parent: &[ParentChunk],
    changed: &[(u64, u64)],
    bounds: Bounds,
    mut emit: impl FnMut(Piece) -> Result<(), E>,
) -> Result<u64, E> {
    let plan = Plan::new(len, parent, changed, bounds);
    src.sparse_reads();
    let mut ahead_of = Prefetch::new(plan.regions());
    let read = Cell::new(0u64);
    let mut buf = Vec::new();
    let (mut pos, mut k) = (0u64, 0usize);
    while pos < len {
        if plan.starts.get(k) == Some(&pos) && plan.clean(k) {
            emit(Piece::Reused(parent[k].id))?;
            pos = plan.starts[k + 1];
            k += 1;
            continue;
        }
        ahead_of.advance(src, pos);
        let ahead = Cell::new(pos);
        let from = Region {
            src,
            pos: &ahead,
            end: len,
            read: &read,
        };
        // Most changes leave the parent's cut where it was: the first read
        // takes the parent's chunk whole and a page beyond it.
        let first = plan
            .parent_len(k, pos)
            .map_or(step(bounds), |n| n.saturating_add(PAST_CUT));
        let cutter = Cutter::new(from, &mut buf, bounds)
            .stepwise(step(bounds))
            .first_read(first);
        for chunk in cutter {
            let chunk = chunk?;
            pos += chunk.len() as u64;
            emit(Piece::Cut(chunk))?;
            ahead_of.advance(src, pos);
            // Back on the parent's cuts: stop reading, unless the next
            // change lies in what was read already (cutting on from here
            // gives the same cuts without reading anything twice).
            if let Some(j) = plan.boundary(pos).filter(|&j| plan.clean(j)) {
                if plan.next_unclean_start(pos) >= ahead.get() {
                    k = j;
                    break;
                }
            }
        }
    }
    Ok(read.get())
}

/// Where the parent's chunks start and which bytes count as changed.
struct Plan {
    /// Start of each parent chunk, and the parent's length last.
    starts: Vec<u64>,
    /// Sorted, merged changed ranges.
    changed: Vec<(u64, u64)>,
    len: u64,
}

impl Plan {
    fn new(len: u64, parent: &[ParentChunk], changed: &[(u64, u64)], bounds: Bounds) -> Self {
        let mut starts = Vec::with_capacity(parent.len() + 1);
        let mut at = 0u64;
        starts.push(0);
        for c in parent {
            at += c.len;
            starts.push(at);
        }
        let base = at;
        let mut ranges: Vec<(u64, u64)> = changed.iter().copied().filter(|(a, b)| a < b).collect();
        if base != len {
            // Within an average chunk of the shorter end, how much is left
            // changes the cuts: not the same in both.
            ranges.push((base.min(len).saturating_sub(bounds.avg as u64), u64::MAX));
        }
        Self {
            starts,
            changed: crate::sys::ranges::merged(ranges),
            len,
        }
    }

    /// The byte ranges a cut around the changes reads, at least: from
    /// the start of the parent chunk before each change to a page past
    /// the end of the last parent chunk it touches.
    fn regions(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(self.changed.len());
        for &(s, e) in &self.changed {
            let from = self.starts[self.chunk_at(s.saturating_sub(1))].min(self.len);
            let last = e.min(self.len).saturating_sub(1).max(from);
            let to = self
                .starts
                .get(self.chunk_at(last) + 1)
                .copied()
                .unwrap_or(self.len)
                .max(last + 1)
                .saturating_add(PAST_CUT as u64)
                .min(self.len);
            match out.last_mut() {
                Some(prev) if from <= prev.1 => prev.1 = prev.1.max(to),
                _ if from < to => out.push((from, to)),
                _ => {}
            }
        }
        out
    }

    /// The length of parent chunk `k` if it starts at `pos`.
    fn parent_len(&self, k: usize, pos: u64) -> Option<usize> {
        match (self.starts.get(k), self.starts.get(k + 1)) {
            (Some(&a), Some(&b)) if a == pos => usize::try_from(b - a).ok(),
            _ => None,
        }
    }

    /// The parent chunk starting at `pos`, if one does.
    fn boundary(&self, pos: u64) -> Option<usize> {
        self.starts
            .binary_search(&pos)
            .ok()
            .filter(|&j| j + 1 < self.starts.len())
    }

    /// Where the first parent chunk at or after `pos` that is not clean
    /// starts (the file's length when none is): the chunk holding the
    /// byte before the next change.
    fn next_unclean_start(&self, pos: u64) -> u64 {
        let i = self.changed.partition_point(|&(_, e)| e <= pos);
        let Some(&(s, _)) = self.changed.get(i) else {
            return self.len;
        };
        let byte = s.max(pos + 1) - 1;
        self.starts[self.chunk_at(byte)].max(pos)
    }

    /// The parent chunk holding `byte` (the last entry, the parent's
    /// length, for a byte past its end).
    fn chunk_at(&self, byte: u64) -> usize {
        self.starts
            .partition_point(|&a| a <= byte)
            .saturating_sub(1)
    }

    /// Whether parent chunk `k` ends where a full read's does: its bytes
    /// and the one after it unchanged, and all of it inside the file.
    fn clean(&self, k: usize) -> bool {
        let (Some(&a), Some(&b)) = (self.starts.get(k), self.starts.get(k + 1)) else {
            return false;
        };
        let b1 = b.saturating_add(1);
        let i = self.changed.partition_point(|&(_, e)| e <= a);
        b <= self.len && self.changed.get(i).is_none_or(|&(s, _)| s >= b1)
    }
}

/// The file from `pos` to `end`, read with `read_at`, counted; `pos`
/// shows how far it has been read.
struct Region<'a, R: ?Sized> {
    src: &'a R,
    pos: &'a Cell<u64>,
    end: u64,
    read: &'a Cell<u64>,
}

impl<R: ReadAt + ?Sized> Read for Region<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.pos.get();
        let left = usize::try_from(self.end - at).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        if n == 0 {
            return Ok(0);
        }
        let got = self.src.read_at(&mut buf[..n], at)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than when it was listed",
            ));
        }
        self.pos.set(at + got as u64);
        self.read.set(self.read.get() + got as u64);
        Ok(got)
    }
}

#[cfg(test)]
mod tests;
