//! Sparse files: finding the data segments (`SEEK_DATA`/`SEEK_HOLE`) and the
//! GNU tar PAX 1.0 sparse map stored in front of the file's data.

use std::fs::File;
use std::io;

use rustix::fs::SeekFrom;

/// One data segment: `(offset, length)`.
pub type Segment = (u64, u64);

/// The data segments of `file` (size `size`), or `None` if it has no holes.
/// The list ends with a zero-length segment at `size` when the file ends in
/// a hole, as GNU tar writes it.
pub fn data_segments(file: &File, size: u64) -> io::Result<Option<Vec<Segment>>> {
    let mut segs = Vec::new();
    let mut off = 0u64;
    while off < size {
        let data = match rustix::fs::seek(file, SeekFrom::Data(off)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(file, SeekFrom::Hole(data))?.min(size);
        segs.push((data, hole - data));
        off = hole;
    }
    rustix::fs::seek(file, SeekFrom::Start(0))?;
    if segs.len() == 1 && segs[0] == (0, size) {
        return Ok(None);
    }
    if segs.last().is_none_or(|&(o, l)| o + l < size) {
        segs.push((size, 0));
    }
    Ok(Some(segs))
}

/// The PAX 1.0 sparse map block(s): count, then offset/length pairs, one
/// number per line, zero-padded to a multiple of 512 bytes.
pub fn encode_map(segs: &[Segment]) -> Vec<u8> {
    let mut out = format!("{}\n", segs.len());
    for (o, l) in segs {
        out.push_str(&format!("{o}\n{l}\n"));
    }
    let mut out = out.into_bytes();
    let padded = out.len().div_ceil(512) * 512;
    out.resize(padded, 0);
    out
}

/// Checks that the segments of a sparse file of size `real` are in order,
/// do not overlap and end within the file (a hostile map could say
/// anything).
pub fn check_segments(segs: &[Segment], real: u64) -> io::Result<()> {
    let mut end = 0u64;
    for &(off, len) in segs {
        if off < end || off.checked_add(len).is_none_or(|e| e > real) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sparse segment out of order or beyond the file size",
            ));
        }
        end = off + len;
    }
    Ok(())
}

/// Reads a PAX 1.0 sparse map from the start of an entry's data. Returns the
/// segments and the number of bytes the map occupied (a multiple of 512).
pub fn decode_map(r: &mut impl io::Read) -> io::Result<(Vec<Segment>, u64)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("sparse map: {m}"));
    let mut consumed = 0u64;
    let mut block = [0u8; 512];
    let mut text = Vec::new();
    let mut numbers: Vec<u64> = Vec::new();
    let mut want: Option<usize> = None;
    loop {
        r.read_exact(&mut block)?;
        consumed += 512;
        for &b in block.iter() {
            if b == b'\n' {
                let s = std::str::from_utf8(&text).map_err(|_| bad("not text"))?;
                numbers.push(s.parse().map_err(|_| bad("not a number"))?);
                text.clear();
                if want.is_none() {
                    let n = numbers.pop().unwrap_or(0);
                    if n > 1 << 20 {
                        return Err(bad("too many segments"));
                    }
                    want = Some(n as usize * 2);
                }
            } else if b.is_ascii_digit() {
                if text.len() > 20 {
                    return Err(bad("number too long"));
                }
                text.push(b);
            } else if want.is_some_and(|w| numbers.len() == w) {
                break;
            } else {
                return Err(bad("unexpected byte"));
            }
            if want.is_some_and(|w| numbers.len() == w) {
                break;
            }
        }
        if want.is_some_and(|w| numbers.len() == w) {
            let segs = numbers.chunks_exact(2).map(|c| (c[0], c[1])).collect();
            return Ok((segs, consumed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn map_round_trips() {
        let segs = vec![(0, 10), (4096, 100), (1 << 30, 0)];
        let enc = encode_map(&segs);
        assert_eq!(enc.len(), 512);
        assert!(enc.starts_with(b"3\n0\n10\n4096\n100\n1073741824\n0\n"));
        let (dec, used) = decode_map(&mut &enc[..]).unwrap();
        assert_eq!(dec, segs);
        assert_eq!(used, 512);
    }

    #[test]
    fn long_map_spans_blocks() {
        let segs: Vec<Segment> = (0..200).map(|i| (i * 1_000_000_000, 4096)).collect();
        let enc = encode_map(&segs);
        assert!(enc.len() > 512 && enc.len().is_multiple_of(512));
        let mut r = &enc[..];
        let (dec, used) = decode_map(&mut r).unwrap();
        assert_eq!(dec, segs);
        assert_eq!(used as usize, enc.len());
    }

    #[test]
    fn garbage_map_is_an_error() {
        let mut blk = vec![b'x'; 512];
        assert!(decode_map(&mut &blk[..]).is_err());
        blk.truncate(10);
        assert!(decode_map(&mut &blk[..]).is_err());
    }

    #[test]
    fn finds_holes_in_a_real_file() {
        let mut f = tempfile::tempfile().unwrap();
        f.seek(io::SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        f.set_len(4 << 20).unwrap();
        match data_segments(&f, 4 << 20).unwrap() {
            // A file system without hole reporting says "all data": fine.
            None => {}
            Some(segs) => {
                assert!(segs.contains(&(1 << 20, 4096)), "{segs:?}");
                assert_eq!(segs.last(), Some(&(4 << 20, 0)));
            }
        }
        let dense = tempfile::tempfile().unwrap();
        (&dense).write_all(&[1u8; 8192]).unwrap();
        assert_eq!(data_segments(&dense, 8192).unwrap(), None);
    }
}
