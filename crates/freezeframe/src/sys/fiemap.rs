//! `FS_IOC_FIEMAP`: where a file's bytes lie on its block device (issue
//! 14, LVM-thin bases: a file's changed ranges are the parts of its
//! extents the pool says changed). The crate's second ioctl, and so its
//! second small `unsafe` module; the layout is the kernel's
//! `struct fiemap` and `struct fiemap_extent`
//! (`include/uapi/linux/fiemap.h`). No well-kept crate offers it without
//! `unsafe` of its own, and `filefrag -v` would be a process per file
//! with output made for people.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use rustix::ioctl::{ioctl, opcode, Updater};

/// `FIEMAP_EXTENT_LAST`: the file's last extent.
pub const LAST: u32 = 0x1;
/// `FIEMAP_EXTENT_UNKNOWN`: the data's location is not known.
pub const UNKNOWN: u32 = 0x2;
/// `FIEMAP_EXTENT_DELALLOC`: not yet allocated (implies UNKNOWN).
pub const DELALLOC: u32 = 0x4;
/// `FIEMAP_EXTENT_ENCODED`: not readable as-is (compressed, say).
pub const ENCODED: u32 = 0x8;
/// `FIEMAP_EXTENT_DATA_ENCRYPTED`.
pub const DATA_ENCRYPTED: u32 = 0x80;
/// `FIEMAP_EXTENT_NOT_ALIGNED`: offsets not block-aligned.
pub const NOT_ALIGNED: u32 = 0x100;
/// `FIEMAP_EXTENT_DATA_INLINE`: the data is in the metadata.
pub const DATA_INLINE: u32 = 0x200;
/// `FIEMAP_EXTENT_DATA_TAIL`: packed with other files' tails.
pub const DATA_TAIL: u32 = 0x400;
/// `FIEMAP_EXTENT_UNWRITTEN`: allocated, reads as zeros.
pub const UNWRITTEN: u32 = 0x800;

/// One extent: `length` bytes of the file from `logical` are on the
/// device at `physical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file.
    pub logical: u64,
    /// Offset on the block device.
    pub physical: u64,
    /// Length in bytes.
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

/// `struct fiemap_extent`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

/// `struct fiemap` (its header).
#[repr(C)]
#[derive(Clone, Copy)]
struct Head {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
}

/// Extents asked for per call.
const BATCH: usize = 256;

/// A `struct fiemap` with room for [`BATCH`] extents after it.
#[repr(C)]
struct Request {
    head: Head,
    extents: [RawExtent; BATCH],
}

const _: () = assert!(std::mem::size_of::<Head>() == 32);
const _: () = assert!(std::mem::size_of::<RawExtent>() == 56);

/// `FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap)`: the opcode encodes
/// the header's size; the kernel reads `extent_count` entries after it.
const FIEMAP: rustix::ioctl::Opcode = opcode::read_write::<Head>(b'f', 11);

/// Every extent of `file`, in file order. Gaps between them are holes.
pub fn extents(file: &File) -> io::Result<Vec<Extent>> {
    let zero = RawExtent {
        logical: 0,
        physical: 0,
        length: 0,
        reserved64: [0; 2],
        flags: 0,
        reserved: [0; 3],
    };
    let mut out: Vec<Extent> = Vec::new();
    let mut start = 0u64;
    loop {
        let mut req = Box::new(Request {
            head: Head {
                start,
                length: u64::MAX - start,
                flags: 0,
                mapped_extents: 0,
                extent_count: BATCH as u32,
                reserved: 0,
            },
            extents: [zero; BATCH],
        });
        // SAFETY: FIEMAP's argument is a `struct fiemap` followed by
        // `extent_count` `struct fiemap_extent`s; `Request` is exactly
        // that (sizes checked above), boxed so it outlives the call, and
        // `extent_count` is the number of entries it has room for.
        unsafe { ioctl(file, Updater::<FIEMAP, Request>::new(&mut req)) }?;
        let n = (req.head.mapped_extents as usize).min(BATCH);
        let got = &req.extents[..n];
        for e in got {
            out.push(Extent {
                logical: e.logical,
                physical: e.physical,
                length: e.length,
                flags: e.flags,
            });
        }
        match got.last() {
            Some(e) if e.flags & LAST == 0 && n == BATCH => {
                start = e.logical.saturating_add(e.length);
            }
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn a_file_with_a_hole_has_two_extents_around_it() {
        // Beside the target dir: ext4 here and in CI (tmpfs has no FIEMAP).
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let p = d.path().join("holey");
        let mut f = File::create(&p).unwrap();
        f.write_all(&[7u8; 65536]).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[9u8; 65536]).unwrap();
        f.sync_all().unwrap();
        let got = extents(&File::open(&p).unwrap()).unwrap();
        let data: u64 = got.iter().map(|e| e.length).sum();
        assert_eq!(data, 2 * 65536, "{got:?}");
        assert_eq!(got.first().unwrap().logical, 0);
        assert_eq!(got.last().unwrap().logical, 1 << 20);
        assert!(got.last().unwrap().flags & LAST != 0);
        assert!(got.iter().all(|e| e.physical != 0));
        let empty = File::create(d.path().join("empty")).unwrap();
        assert!(extents(&empty).unwrap().is_empty());
    }

    #[test]
    fn a_file_of_many_extents_is_read_in_batches() {
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let p = d.path().join("sparse");
        let mut f = File::create(&p).unwrap();
        // 600 separate 4 KiB blocks, a hole between each.
        for i in 0..600u64 {
            f.seek(SeekFrom::Start(i * 65536)).unwrap();
            f.write_all(&[1u8; 4096]).unwrap();
        }
        f.sync_all().unwrap();
        let got = extents(&File::open(&p).unwrap()).unwrap();
        assert_eq!(got.len(), 600, "{:?}", &got[..3]);
        for (i, e) in got.iter().enumerate() {
            assert_eq!(e.logical, i as u64 * 65536);
            assert_eq!(e.length, 4096);
        }
    }
}
