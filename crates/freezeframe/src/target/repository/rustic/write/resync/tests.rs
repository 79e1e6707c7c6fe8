//! The cut around changes gives exactly a full read's blob list, for
//! every kind of edit a file sees, with the changed ranges the kernel
//! would report (4 KiB blocks).

use std::cell::Cell;
use std::io;

use fastcdc::v2020::FastCDC;

use super::super::cutter::tests::data;
use super::super::pack::sha256;
use super::*;

const SMALL: Bounds = Bounds {
    min: 1024,
    avg: 4096,
    max: 16384,
};
const PAGE: u64 = 4096;

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The blob list of a full read.
fn full(d: &[u8], b: Bounds) -> Vec<ParentChunk> {
    FastCDC::new(d, b.min, b.avg, b.max)
        .map(|c| ParentChunk {
            id: sha256(&d[c.offset..c.offset + c.length]),
            len: c.length as u64,
        })
        .collect()
}

/// The blob list cut around `changed`, and the bytes read.
fn around(
    new: &[u8],
    parent: &[ParentChunk],
    changed: &[(u64, u64)],
    b: Bounds,
) -> (Vec<Hash>, u64) {
    around_in(new, new.len() as u64, parent, changed, b)
}

/// [`around`] reading from `src`, of `len` bytes.
fn around_in<R: ReadAt + ?Sized>(
    src: &R,
    len: u64,
    parent: &[ParentChunk],
    changed: &[(u64, u64)],
    b: Bounds,
) -> (Vec<Hash>, u64) {
    let mut ids = Vec::new();
    let read = recut::<_, io::Error>(src, len, parent, changed, b, |p| {
        ids.push(match p {
            Piece::Reused(id) => {
                assert!(parent.iter().any(|c| c.id == id));
                id
            }
            Piece::Cut(d) => sha256(&d),
        });
        Ok(())
    })
    .unwrap();
    (ids, read)
}

/// `[a, b)` widened to whole pages, as btrfs reports extents.
fn pages(a: u64, b: u64) -> (u64, u64) {
    (a / PAGE * PAGE, b.div_ceil(PAGE) * PAGE)
}

/// One random edit of `d`: the new bytes and the ranges the kernel
/// would name (a truncation names none: its size says it).
fn edit(rng: &mut Rng, d: &[u8], kind: u64) -> (&'static str, Vec<u8>, Vec<(u64, u64)>) {
    let len = d.len() as u64;
    let mut n = d.to_vec();
    let at = rng.below(len);
    let size = 1 + rng.below(3 * SMALL.avg as u64);
    match kind {
        0 => {
            let end = (at + size).min(len);
            let fresh = rng.bytes((end - at) as usize);
            n[at as usize..end as usize].copy_from_slice(&fresh);
            ("overwrite", n, vec![pages(at, end)])
        }
        1 => {
            let mut ranges = Vec::new();
            for _ in 0..1 + rng.below(6) {
                let a = rng.below(len);
                let e = (a + 1 + rng.below(PAGE * 2)).min(len);
                let fresh = rng.bytes((e - a) as usize);
                n[a as usize..e as usize].copy_from_slice(&fresh);
                ranges.push(pages(a, e));
            }
            ("scattered pages", n, ranges)
        }
        2 => {
            n.extend(rng.bytes(size as usize));
            ("append", n, vec![pages(len, len + size)])
        }
        3 => {
            n.truncate(at as usize);
            ("truncate", n, vec![])
        }
        4 => {
            let (a, e) = pages(at, at + size);
            let e = e.min(len);
            n[a as usize..e as usize].fill(0);
            ("hole punched", n, vec![(a, e)])
        }
        5 => {
            let fresh = rng.bytes(size as usize);
            n.splice(at as usize..at as usize, fresh);
            let end = n.len() as u64;
            ("insert", n, vec![pages(at, end)])
        }
        6 => {
            n.resize(d.len() + size as usize, 0);
            ("extended with zeros", n, vec![])
        }
        _ => ("nothing", n, vec![]),
    }
}

/// Asserts that the cut of `new` around `changed` gives a full read's
/// blob list (`SMALL` bounds) and reads no more than the file.
fn same_as_full_read(new: &[u8], parent: &[ParentChunk], changed: &[(u64, u64)], what: &str) {
    let want: Vec<Hash> = full(new, SMALL).iter().map(|c| c.id).collect();
    let (got, read) = around(new, parent, changed, SMALL);
    assert_eq!(got, want, "{what}");
    assert!(read <= new.len() as u64, "{what}: read {read} bytes");
}

#[test]
fn every_kind_of_edit_gives_a_full_reads_blob_list() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000u64 {
        let len =
            [0, 100, 5000, 16384, 70_000, 400_000][(round % 6) as usize] + rng.below(3000) as usize;
        let base = data(len, round);
        let parent = full(&base, SMALL);
        let kind = round % 8;
        let (what, new, changed) = edit(&mut rng, &base, kind);
        same_as_full_read(
            &new,
            &parent,
            &changed,
            &format!("round {round}: {what} in {len} bytes"),
        );
    }
}

#[test]
fn a_small_change_in_a_large_file_reads_a_few_chunks() {
    let base = data(4 << 20, 7);
    let parent = full(&base, SMALL);
    let mut new = base.clone();
    new[2_000_000..2_000_100].fill(0xAB);
    let changed = [pages(2_000_000, 2_000_100)];
    let (got, read) = around(&new, &parent, &changed, SMALL);
    let want: Vec<Hash> = full(&new, SMALL).iter().map(|c| c.id).collect();
    assert_eq!(got, want);
    // The chunk before, the changed ones, and at most one buffer beyond.
    assert!(read <= 6 * SMALL.max as u64, "read {read} bytes");
    let reused = got
        .iter()
        .filter(|id| parent.iter().any(|c| c.id == **id))
        .count();
    assert!(reused + 4 >= got.len(), "{reused} of {} reused", got.len());
    // Nothing changed: nothing read.
    assert_eq!(around(&base, &parent, &[], SMALL).1, 0);
}

/// A source that counts its reads and whether readahead was turned off.
struct Counted<'a> {
    data: &'a [u8],
    calls: Cell<usize>,
    sparse: Cell<bool>,
}

impl ReadAt for Counted<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.calls.set(self.calls.get() + 1);
        self.data.read_at(buf, offset)
    }
    fn sparse_reads(&self) {
        self.sparse.set(true);
    }
}

#[test]
fn a_page_written_inside_a_chunk_is_one_read_of_that_chunk() {
    let b = Bounds::around(64 << 10);
    let base = data(8 << 20, 5);
    let parent = full(&base, b);
    // A page in the middle of a chunk in the middle of the file, where
    // the cut stays (a change near a cut may move it: more reads).
    let k = parent.len() / 2;
    let start: u64 = parent[..k].iter().map(|c| c.len).sum();
    let at = (start + parent[k].len / 2) as usize;
    let mut new = base.clone();
    new[at..at + 4096].copy_from_slice(&data(4096, 99));
    let want = full(&new, b);
    assert_eq!(
        want[k].len, parent[k].len,
        "the test's change moved the cut"
    );
    let src = Counted {
        data: &new,
        calls: Cell::new(0),
        sparse: Cell::new(false),
    };
    let changed = [pages(at as u64, at as u64 + 4096)];
    let (got, read) = around_in(&src, new.len() as u64, &parent, &changed, b);
    assert_eq!(got, want.iter().map(|c| c.id).collect::<Vec<_>>());
    assert!(src.sparse.get(), "readahead left on");
    assert_eq!(src.calls.get(), 1, "one read for the chunk");
    assert_eq!(read, parent[k].len + PAST_CUT as u64);
}

#[test]
fn restics_bounds_too() {
    let base = data(24 << 20, 11);
    let parent = full(&base, Bounds::RESTIC);
    let mut rng = Rng(42);
    let mut new = base.clone();
    let mut changed = Vec::new();
    for _ in 0..3 {
        let a = rng.below(new.len() as u64);
        let fresh = rng.bytes(8192);
        let e = (a as usize + 8192).min(new.len());
        new[a as usize..e].copy_from_slice(&fresh[..e - a as usize]);
        changed.push(pages(a, e as u64));
    }
    new.extend(rng.bytes(3 << 20));
    changed.push(pages(base.len() as u64, new.len() as u64));
    let want: Vec<Hash> = full(&new, Bounds::RESTIC).iter().map(|c| c.id).collect();
    let (got, read) = around(&new, &parent, &changed, Bounds::RESTIC);
    assert_eq!(got, want);
    assert!(read < new.len() as u64 / 2, "read {read} of {}", new.len());
}

#[test]
fn a_file_shorter_than_listed_is_an_error() {
    let base = data(100_000, 3);
    let parent = full(&base, SMALL);
    let changed = [(0, 10), (60_000, 60_010)];
    let r = recut::<_, io::Error>(&base[..50_000], 100_000, &parent, &changed, SMALL, |_| {
        Ok(())
    });
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn hundreds_of_changes_give_a_full_reads_blob_list() {
    // Hundreds of runs of changed chunks, some close enough that the cut
    // around one reaches past the next, some far apart; with appends,
    // truncations and inserts on top.
    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
    for round in 0..40u64 {
        let base = data(2 << 20, round);
        let parent = full(&base, SMALL);
        let mut new = base.clone();
        let mut changed = Vec::new();
        for _ in 0..1 + rng.below(300) {
            let a = rng.below(new.len() as u64);
            let e = (a + 1 + rng.below(3 * PAGE)).min(new.len() as u64);
            let fresh = rng.bytes((e - a) as usize);
            new[a as usize..e as usize].copy_from_slice(&fresh);
            changed.push(pages(a, e));
        }
        match round % 4 {
            1 => {
                let at = new.len() as u64;
                new.extend(rng.bytes(50_000));
                changed.push(pages(at, new.len() as u64));
            }
            2 => new.truncate(new.len() - rng.below(100_000) as usize),
            3 => {
                let at = rng.below(new.len() as u64) as usize;
                new.splice(at..at, rng.bytes(777));
                changed.push(pages(at as u64, new.len() as u64));
            }
            _ => {}
        }
        same_as_full_read(&new, &parent, &changed, &format!("round {round}"));
    }
}

#[test]
fn a_read_error_far_into_a_file_of_many_changes_is_an_error() {
    let base = data(400_000, 8);
    let parent = full(&base, SMALL);
    let changed: Vec<(u64, u64)> = (0..40).map(|i| pages(i * 9_000, i * 9_000 + 10)).collect();
    let r = recut::<_, io::Error>(&base[..200_000], 400_000, &parent, &changed, SMALL, |_| {
        Ok(())
    });
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
}
