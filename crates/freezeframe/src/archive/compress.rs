//! Compression of archives (streamed, multithreaded) and detection of the
//! compression of an existing archive by its magic bytes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;

use super::parallel::{BlockCodec, BlockParallelWriter};
use crate::config::Compression;

/// bzip2's largest block (level 9); each block becomes one stream.
const BZIP2_BLOCK: usize = 900 * 1000;
/// gzip member size: large enough that the restarted 32 KiB window costs
/// nothing measurable.
const GZIP_BLOCK: usize = 1 << 20;

/// Input bytes per zstd frame. Frames are independent, so a reader can
/// start at any of them ([`super::seekable`]: `freezeframe mount` reads a
/// file deep in an archive by decoding at most one frame before it); the
/// cost is a drained pipeline and a fresh window every 32 MiB — GNU tar
/// and `zstd -d` read concatenated frames as one stream.
pub const ZSTD_FRAME: u64 = 32 << 20;

/// zstd, one frame per [`ZSTD_FRAME`] input bytes. One compression
/// context for all of them: ending a frame keeps its worker threads and
/// buffers for the next (a new context per frame cost a third more CPU).
pub struct FramedZstd<W: Write> {
    /// `None` only while a frame is being ended.
    out: Option<Writer<W, RawEncoder<'static>>>,
    in_frame: u64,
    /// Frames ended so far.
    frames: u64,
}

type Writer<W, D> = zstd::stream::zio::Writer<W, D>;
type RawEncoder<'a> = zstd::stream::raw::Encoder<'a>;

impl<W: Write> FramedZstd<W> {
    fn new(inner: W, level: i32, threads: usize) -> io::Result<Self> {
        use zstd::stream::raw::CParameter;
        let mut enc = RawEncoder::new(level)?;
        // A content checksum per frame: `zstd -t`, GNU tar and our own
        // decoder then catch a flipped byte even inside a block stored raw
        // (8 bytes a frame, XXH64 at memory speed).
        enc.set_parameter(CParameter::ChecksumFlag(true))?;
        if threads > 1 {
            enc.set_parameter(CParameter::NbWorkers(threads as u32))?;
        }
        Ok(Self {
            out: Some(Writer::new(inner, enc)),
            in_frame: 0,
            frames: 0,
        })
    }

    fn out(&mut self) -> io::Result<&mut Writer<W, RawEncoder<'static>>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("a zstd frame failed to end"))
    }

    /// Ends the frame and readies the same context for the next.
    fn end_frame(&mut self) -> io::Result<()> {
        use zstd::stream::raw::Operation;
        self.out()?.finish()?;
        let Some(done) = self.out.take() else {
            return Err(io::Error::other("a zstd frame failed to end"));
        };
        let (inner, mut enc) = done.into_inner();
        enc.reinit()?;
        self.out = Some(Writer::new(inner, enc));
        self.frames += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        // An input ending on a frame boundary needs no empty frame after;
        // an empty input still gets one (a valid, empty zstd stream).
        if self.in_frame > 0 || self.frames == 0 {
            self.out()?.finish()?;
        }
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("a zstd frame failed to end"))?;
        Ok(out.into_inner().0)
    }
}

impl<W: Write> Write for FramedZstd<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = (ZSTD_FRAME - self.in_frame).min(buf.len() as u64) as usize;
        let n = self.out()?.write(&buf[..room])?;
        self.in_frame += n as u64;
        if self.in_frame == ZSTD_FRAME {
            self.end_frame()?;
            self.in_frame = 0;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

/// A streaming compressor in front of `W`.
pub enum Encoder<W: Write> {
    /// zstd with its own worker threads, in frames of [`ZSTD_FRAME`].
    Zstd(FramedZstd<W>),
    /// bzip2 or gzip, block-parallel.
    Blocks(BlockParallelWriter<W>),
    /// No compression.
    Plain(W),
}

impl<W: Write> Encoder<W> {
    /// A compressor for `kind` at `level` using up to `threads` threads.
    pub fn new(inner: W, kind: Compression, level: i32, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        Ok(match kind {
            Compression::Zstd => Encoder::Zstd(FramedZstd::new(inner, level, threads)?),
            Compression::Bzip2 => {
                let lvl = bzip2::Compression::new(level.clamp(1, 9) as u32);
                let codec: BlockCodec = Arc::new(move |block: &[u8]| {
                    let mut e =
                        bzip2::write::BzEncoder::new(Vec::with_capacity(block.len() / 3), lvl);
                    e.write_all(block)?;
                    e.finish()
                });
                Encoder::Blocks(BlockParallelWriter::new(inner, codec, threads, BZIP2_BLOCK))
            }
            Compression::Gzip => {
                let lvl = flate2::Compression::new(level.clamp(0, 9) as u32);
                let codec: BlockCodec = Arc::new(move |block: &[u8]| {
                    let mut e =
                        flate2::write::GzEncoder::new(Vec::with_capacity(block.len() / 3), lvl);
                    e.write_all(block)?;
                    e.finish()
                });
                Encoder::Blocks(BlockParallelWriter::new(inner, codec, threads, GZIP_BLOCK))
            }
            Compression::None => Encoder::Plain(inner),
        })
    }

    /// Flushes the end of the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Blocks(b) => b.finish(),
            Encoder::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Blocks(b) => b.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Blocks(b) => b.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

/// The compression of a stream, from its first bytes.
pub fn detect(head: &[u8]) -> Compression {
    match head {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0x1f, 0x8b, ..] => Compression::Gzip,
        _ => Compression::None,
    }
}

/// A reader that decompresses `r` whatever its compression (all streams or
/// members of multi-stream files).
pub fn decoder<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 16, r);
    let kind = detect(r.fill_buf()?);
    Ok(match kind {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::None => Box::new(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .take(5_000_000)
            .collect()
    }

    #[test]
    fn every_compressor_round_trips_multi_block() {
        let data = sample();
        for kind in [
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Gzip,
            Compression::None,
        ] {
            let mut e = Encoder::new(Vec::new(), kind, kind.default_level(), 3).unwrap();
            for chunk in data.chunks(70_001) {
                e.write_all(chunk).unwrap();
            }
            let out = e.finish().unwrap();
            assert_eq!(detect(&out), kind, "{kind}");
            let mut back = Vec::new();
            decoder(&out[..]).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back.len(), data.len(), "{kind}");
            assert!(back == data, "{kind} differs");
        }
    }

    #[test]
    fn zstd_frames_end_on_their_boundaries_and_empty_input_is_a_stream() {
        for len in [0, ZSTD_FRAME as usize, 2 * ZSTD_FRAME as usize + 5] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut e = Encoder::new(Vec::new(), Compression::Zstd, 3, 2).unwrap();
            e.write_all(&data).unwrap();
            let out = e.finish().unwrap();
            // Count the frames: each is found and skipped on its own.
            let (mut frames, mut rest) = (0, &out[..]);
            while !rest.is_empty() {
                let n = zstd::zstd_safe::find_frame_compressed_size(rest).unwrap();
                rest = &rest[n..];
                frames += 1;
            }
            assert_eq!(frames, len.div_ceil(ZSTD_FRAME as usize).max(1), "{len}");
            assert!(zstd::decode_all(&out[..]).unwrap() == data, "{len}");
        }
    }

    #[test]
    fn a_flipped_byte_in_a_raw_zstd_block_is_caught_by_the_frame_checksum() {
        // Incompressible data: zstd stores its blocks raw, where only the
        // frame checksum can notice a changed byte.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for threads in [1, 2] {
            let mut e = Encoder::new(Vec::new(), Compression::Zstd, 3, threads).unwrap();
            e.write_all(&data).unwrap();
            let mut out = e.finish().unwrap();
            let mid = out.len() / 2;
            out[mid] ^= 0x01;
            let mut back = Vec::new();
            let r = decoder(&out[..]).unwrap().read_to_end(&mut back);
            assert!(r.is_err(), "{threads} thread(s): corruption went unnoticed");
        }
    }

    #[test]
    fn block_parallel_bzip2_writes_several_streams() {
        let data = sample();
        let mut e = Encoder::new(Vec::new(), Compression::Bzip2, 9, 2).unwrap();
        e.write_all(&data).unwrap();
        let out = e.finish().unwrap();
        let streams = out
            .windows(10)
            .filter(|w| w.starts_with(b"BZh9") && w[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59])
            .count();
        assert!(
            streams >= 5,
            "expected one stream per 900 kB block, got {streams}"
        );
    }
}
