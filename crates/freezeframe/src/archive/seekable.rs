//! Random access into a compressed archive file. A compressed stream cannot
//! be entered in the middle, but a stream of several independent members
//! (gzip members, bzip2 streams, zstd frames — freezeframe's writer makes
//! all three) can be entered at any member's start. One pass over the file
//! ([`SeekableArchive::scan`], which also feeds the caller's index) records
//! where each member starts on both sides; a read at a plain offset then
//! decodes from the nearest member start before it, or goes on with a
//! decoder left just before it by an earlier read (sequential readers never
//! decode anything twice). Memory: at most [`MAX_IDLE`] decoders are kept.
//! The scan decodes every member to its end, so every member's checksum
//! (gzip's and bzip2's CRC, zstd's XXH64) has been checked before a read
//! is served; reads trust the file not to change afterwards.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::compress::detect;
use crate::config::Compression;

/// Decoders kept between reads (each holds a window: zstd's up to 8 MiB at
/// the levels freezeframe writes, bzip2's ~4 MB, gzip's 32 KiB).
pub const MAX_IDLE: usize = 8;

/// Where decoding may start: a member's offset in the file (`packed`) and
/// in the decompressed stream (`plain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offset in the compressed file.
    pub packed: u64,
    /// Offset in the decompressed stream.
    pub plain: u64,
}

/// Reads `file` from `pos` on with positioned reads, so that any number of
/// readers share one open file.
struct At {
    file: Arc<File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A buffered reader that counts the bytes its consumer took.
struct Counted<R> {
    inner: R,
    consumed: u64,
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let avail = self.inner.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

type Source = Counted<BufReader<At>>;

/// The decoder of one member; each stops at its member's end without
/// reading past it.
enum Member {
    Zstd(zstd::stream::read::Decoder<'static, Source>),
    Gzip(flate2::bufread::GzDecoder<Source>),
    Bzip2(bzip2::bufread::BzDecoder<Source>),
}

impl Member {
    fn new(kind: Compression, src: Source) -> io::Result<Self> {
        Ok(match kind {
            Compression::Zstd => {
                Member::Zstd(zstd::stream::read::Decoder::with_buffer(src)?.single_frame())
            }
            Compression::Gzip => Member::Gzip(flate2::bufread::GzDecoder::new(src)),
            Compression::Bzip2 => Member::Bzip2(bzip2::bufread::BzDecoder::new(src)),
            Compression::None => {
                return Err(io::Error::other("an uncompressed archive has no members"))
            }
        })
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Member::Zstd(d) => d.read(buf),
            Member::Gzip(d) => d.read(buf),
            Member::Bzip2(d) => d.read(buf),
        }
    }

    fn into_source(self) -> Source {
        match self {
            Member::Zstd(d) => d.finish(),
            Member::Gzip(d) => d.into_inner(),
            Member::Bzip2(d) => d.into_inner(),
        }
    }
}

/// The decompressed stream from a checkpoint on, member after member.
struct Members {
    kind: Compression,
    member: Option<Member>,
    between: Option<Source>,
    /// The packed offset the source started at.
    base: u64,
    /// Plain bytes produced so far, counted from the start of the stream.
    plain: u64,
    /// Member starts met on the way (recorded during the scan only).
    starts: Option<Vec<Checkpoint>>,
}

impl Members {
    fn at(file: &Arc<File>, kind: Compression, from: Checkpoint) -> Self {
        let src = Counted {
            inner: BufReader::with_capacity(
                1 << 16,
                At {
                    file: file.clone(),
                    pos: from.packed,
                },
            ),
            consumed: 0,
        };
        Members {
            kind,
            member: None,
            between: Some(src),
            base: from.packed,
            plain: from.plain,
            starts: None,
        }
    }
}

impl Read for Members {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(m) = &mut self.member {
                let n = m.read(buf)?;
                if n > 0 {
                    self.plain += n as u64;
                    return Ok(n);
                }
                let done = self.member.take().map(Member::into_source);
                self.between = done;
            }
            let Some(mut src) = self.between.take() else {
                return Ok(0);
            };
            if src.fill_buf()?.is_empty() {
                self.between = Some(src);
                return Ok(0);
            }
            if let Some(starts) = &mut self.starts {
                starts.push(Checkpoint {
                    packed: self.base + src.consumed,
                    plain: self.plain,
                });
            }
            self.member = Some(Member::new(self.kind, src)?);
        }
    }
}

/// A decoder parked between reads (at its stream's `plain` offset).
struct Cursor {
    stream: Members,
}

/// A compressed (or plain) archive file, readable at any plain offset.
pub struct SeekableArchive {
    file: Arc<File>,
    kind: Compression,
    checkpoints: Vec<Checkpoint>,
    idle: Mutex<Vec<Cursor>>,
    /// Decoders started since the scan.
    started: AtomicU64,
}

impl SeekableArchive {
    /// Reads `file` once through `f` (which sees the decompressed stream
    /// and builds whatever index it needs), noting where members start.
    pub fn scan<T>(
        file: File,
        f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
    ) -> io::Result<(Self, T)> {
        let mut head = [0u8; 4];
        let n = file.read_at(&mut head, 0)?;
        let kind = detect(&head[..n]);
        let file = Arc::new(file);
        let (checkpoints, out) = if kind == Compression::None {
            let mut plain = At {
                file: file.clone(),
                pos: 0,
            };
            (Vec::new(), f(&mut plain)?)
        } else {
            let mut s = Members::at(
                &file,
                kind,
                Checkpoint {
                    packed: 0,
                    plain: 0,
                },
            );
            s.starts = Some(Vec::new());
            let out = f(&mut s)?;
            (s.starts.take().unwrap_or_default(), out)
        };
        Ok((
            SeekableArchive {
                file,
                kind,
                checkpoints,
                idle: Mutex::new(Vec::new()),
                started: AtomicU64::new(0),
            },
            out,
        ))
    }

    /// The compression found.
    pub fn compression(&self) -> Compression {
        self.kind
    }

    /// The member starts found by the scan.
    pub fn checkpoints(&self) -> &[Checkpoint] {
        &self.checkpoints
    }

    #[cfg(test)]
    /// How many decoders reads have started (each decodes from a
    /// checkpoint): what random access has cost.
    pub fn decoders_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Up to `len` bytes from plain offset `offset` (fewer only at the
    /// end of the stream).
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        if self.kind == Compression::None {
            let mut got = 0;
            while got < len {
                let n = self.file.read_at(&mut out[got..], offset + got as u64)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            out.truncate(got);
            return Ok(out);
        }
        let mut cursor = self.cursor_for(offset);
        let r = read_from(&mut cursor.stream, offset, &mut out);
        match r {
            Ok(got) => {
                out.truncate(got);
                self.park(cursor);
                Ok(out)
            }
            // A decoder that failed is not parked again.
            Err(e) => Err(e),
        }
    }

    /// The parked decoder closest before `offset` if none of the
    /// checkpoints is closer, else a new one from the nearest checkpoint.
    fn cursor_for(&self, offset: u64) -> Cursor {
        let start = self
            .checkpoints
            .iter()
            .rev()
            .find(|c| c.plain <= offset)
            .copied()
            .unwrap_or(Checkpoint {
                packed: 0,
                plain: 0,
            });
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let best = idle
            .iter()
            .enumerate()
            .filter(|(_, c)| c.stream.plain <= offset && c.stream.plain >= start.plain)
            .max_by_key(|(_, c)| c.stream.plain)
            .map(|(i, _)| i);
        match best {
            Some(i) => idle.remove(i),
            None => {
                self.started.fetch_add(1, Ordering::Relaxed);
                Cursor {
                    stream: Members::at(&self.file, self.kind, start),
                }
            }
        }
    }

    fn park(&self, cursor: Cursor) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(cursor);
    }
}

/// Skips `stream` forward to `offset` and fills `out` as far as the
/// stream goes; the bytes filled.
fn read_from(stream: &mut Members, offset: u64, out: &mut [u8]) -> io::Result<usize> {
    let skip = offset - stream.plain;
    let skipped = io::copy(&mut stream.by_ref().take(skip), &mut io::sink())?;
    if skipped < skip {
        return Ok(0);
    }
    let mut got = 0;
    while got < out.len() {
        let n = stream.read(&mut out[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::compress::Encoder;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn sample(n: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Compressible, but not trivially.
                if i % 3 == 0 {
                    (x & 0x0f) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    fn archive_of(data: &[u8], kind: Compression, threads: usize) -> File {
        let f = tempfile::tempfile().unwrap();
        let mut e = Encoder::new(f, kind, kind.default_level(), threads).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_at_any_offset_in_every_compression() {
        let data = sample(5_000_000);
        for kind in [
            Compression::Zstd,
            Compression::Gzip,
            Compression::Bzip2,
            Compression::None,
        ] {
            let f = archive_of(&data, kind, 2);
            let (a, n) = SeekableArchive::scan(f, |r| io::copy(r, &mut io::sink())).unwrap();
            assert_eq!(n, data.len() as u64, "{kind:?}");
            assert_eq!(a.compression(), kind);
            // Backwards, forwards, overlapping, across member boundaries,
            // past the end.
            for &(off, len) in &[
                (4_000_000u64, 100_000usize),
                (0, 10),
                (1_048_570, 20),
                (2_999_999, 1_000_001),
                (4_999_990, 100),
                (6_000_000, 10),
            ] {
                let got = a.read_at(off, len).unwrap();
                let lo = (off as usize).min(data.len());
                let hi = (lo + len).min(data.len());
                assert_eq!(got, &data[lo..hi], "{kind:?} at {off}+{len}");
            }
        }
    }

    #[test]
    fn multi_member_streams_get_a_checkpoint_per_member() {
        let data = sample(3_500_000);
        let gz = archive_of(&data, Compression::Gzip, 2);
        let (a, _) = SeekableArchive::scan(gz, |r| io::copy(r, &mut io::sink())).unwrap();
        // 1 MiB members: four of them.
        let plain: Vec<u64> = a.checkpoints().iter().map(|c| c.plain).collect();
        assert_eq!(plain, vec![0, 1 << 20, 2 << 20, 3 << 20]);
        let bz = archive_of(&data, Compression::Bzip2, 2);
        let (a, _) = SeekableArchive::scan(bz, |r| io::copy(r, &mut io::sink())).unwrap();
        assert_eq!(a.checkpoints().len(), 4);
        // Each checkpoint starts a member on its own.
        for c in a.checkpoints() {
            let fresh = Members::at(&a.file, a.kind, *c);
            let mut first = Vec::new();
            fresh.take(100).read_to_end(&mut first).unwrap();
            let at = c.plain as usize;
            assert_eq!(first, &data[at..at + 100]);
        }
    }

    #[test]
    fn zstd_archives_are_written_in_frames_a_reader_can_enter() {
        use crate::archive::compress::ZSTD_FRAME;
        let data = sample(2 * ZSTD_FRAME as usize + 1000);
        let f = archive_of(&data, Compression::Zstd, 2);
        let (a, _) = SeekableArchive::scan(f, |r| io::copy(r, &mut io::sink())).unwrap();
        let plain: Vec<u64> = a.checkpoints().iter().map(|c| c.plain).collect();
        assert_eq!(plain, vec![0, ZSTD_FRAME, 2 * ZSTD_FRAME]);
        let off = 2 * ZSTD_FRAME - 10;
        assert_eq!(
            a.read_at(off, 100).unwrap(),
            &data[off as usize..off as usize + 100]
        );
        // Entered at the second frame, not decoded from the start.
        assert_eq!(a.decoders_started(), 1);
    }

    #[test]
    fn sequential_readers_reuse_their_decoder() {
        let data = sample(2_000_000);
        let f = archive_of(&data, Compression::Zstd, 1);
        let (a, _) = SeekableArchive::scan(f, |r| io::copy(r, &mut io::sink())).unwrap();
        // Two interleaved sequential readers.
        let mut at = [0u64, 1_000_000];
        for _ in 0..50 {
            for p in &mut at {
                let got = a.read_at(*p, 10_000).unwrap();
                assert_eq!(got, &data[*p as usize..*p as usize + 10_000]);
                *p += 10_000;
            }
        }
        // One decoder each, never restarted.
        assert_eq!(a.decoders_started(), 2);
    }

    #[test]
    fn a_damaged_member_fails_the_scan_in_every_compression() {
        // The scan decodes every member to its end, so each member's
        // checksum is checked before any read is served.
        let data = sample(2_500_000);
        for kind in [Compression::Zstd, Compression::Gzip, Compression::Bzip2] {
            let f = archive_of(&data, kind, 2);
            let len = f.metadata().unwrap().len();
            f.write_at(&[0x55; 16], len / 2).unwrap();
            let r = SeekableArchive::scan(f, |r| io::copy(r, &mut io::sink()));
            assert!(r.is_err(), "{kind:?}");
        }
    }
}
