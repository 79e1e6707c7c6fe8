//! Cutting one file into content-defined chunks as it is read: FastCDC
//! over a fixed buffer of twice the largest chunk. A chunk is handed out
//! once it ends before the data read so far (its cut depends only on its
//! own bytes), the last one at the end of the file; the unfinished rest is
//! moved to the front once per refill, not once per chunk.

use std::io::{self, Read};

use fastcdc::v2020::FastCDC;

/// restic's average chunk size (its chunks are 512 KiB to 8 MiB).
pub(crate) const AVG: usize = 1 << 20;

/// Chunk size bounds, as FastCDC takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Smallest chunk (but a file's last).
    pub min: usize,
    /// Average chunk.
    pub avg: usize,
    /// Largest chunk.
    pub max: usize,
}

impl Bounds {
    /// restic's bounds, the writer's default.
    pub(crate) const RESTIC: Bounds = Bounds::around(AVG);

    /// Bounds in restic's proportions around the average `avg`: half of
    /// it to eight times it.
    pub(crate) const fn around(avg: usize) -> Bounds {
        Bounds {
            min: avg / 2,
            avg,
            max: avg * 8,
        }
    }
}

/// The chunks of a reader, in order.
pub(crate) struct Cutter<'b, R> {
    src: R,
    /// Reused from file to file (allocated, and zeroed, once).
    buf: &'b mut Vec<u8>,
    /// Bytes of `buf` holding data.
    filled: usize,
    /// Start of the data not yet handed out.
    start: usize,
    eof: bool,
    failed: bool,
    /// Bytes read by the first refill of each chunk (`None`: fill the
    /// buffer every time).
    step: Option<usize>,
    /// Most bytes read by the first refill, if not `step`.
    first: Option<usize>,
    /// Most bytes the next refill reads: `step`, doubled on each refill
    /// that still finds no cut, so a long chunk is scanned a bounded
    /// number of times (FastCDC starts again at the chunk's start).
    next_step: usize,
    min: usize,
    avg: usize,
    max: usize,
}

impl<'b, R: Read> Cutter<'b, R> {
    /// Cuts `src` with the bounds `b`, reading into `buf`.
    pub(crate) fn new(src: R, buf: &'b mut Vec<u8>, b: Bounds) -> Self {
        Self::with_bounds(src, buf, b.min, b.avg, b.max)
    }

    /// Cuts `src` with bounds given one by one.
    pub(crate) fn with_bounds(
        src: R,
        buf: &'b mut Vec<u8>,
        min: usize,
        avg: usize,
        max: usize,
    ) -> Self {
        buf.resize(2 * max, 0);
        Self {
            src,
            buf,
            filled: 0,
            start: 0,
            eof: false,
            failed: false,
            step: None,
            first: None,
            next_step: 0,
            min,
            avg,
            max,
        }
    }

    /// Reads `step` bytes per refill (twice as many on each further
    /// refill before a cut is found), so that a reader stopped after a few
    /// chunks has read little beyond them (the same cuts).
    pub(crate) fn stepwise(mut self, step: usize) -> Self {
        self.step = Some(step.max(1));
        self.next_step = step.max(1);
        self
    }

    /// Reads at most `n` bytes by the first refill (then as `stepwise`
    /// says): where the cut is likely known, one read can take it all.
    pub(crate) fn first_read(mut self, n: usize) -> Self {
        self.first = Some(n.max(1));
        self
    }

    /// Moves the unfinished rest to the front and reads until the buffer
    /// is full (or `step` more bytes are in) or the file ends.
    fn refill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let want = match (self.first.take(), self.step) {
            (Some(first), _) => first,
            (None, Some(_)) => {
                let s = self.next_step;
                self.next_step = s.saturating_mul(2);
                s
            }
            (None, None) => self.buf.len(),
        };
        let want = self.filled.saturating_add(want).min(self.buf.len());
        while self.filled < want {
            match self.src.read(&mut self.buf[self.filled..want]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk's length at `start`, if it is final.
    fn next_cut(&self) -> Option<usize> {
        let data = &self.buf[self.start..self.filled];
        let chunk = FastCDC::new(data, self.min, self.avg, self.max).next()?;
        (chunk.length < data.len() || self.eof).then_some(chunk.length)
    }
}

impl<R: Read> Iterator for Cutter<'_, R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let len = loop {
            if let Some(n) = self.next_cut() {
                break n;
            }
            if self.eof {
                return None;
            }
            if let Err(e) = self.refill() {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let chunk = self.buf[self.start..self.start + len].to_vec();
        self.start += len;
        if let Some(step) = self.step {
            self.next_step = step;
        }
        Some(Ok(chunk))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn restics_bounds_are_512k_1m_8m_and_others_keep_its_proportions() {
        let b = Bounds::RESTIC;
        assert_eq!((b.min, b.avg, b.max), (512 << 10, 1 << 20, 8 << 20));
        let s = Bounds::around(64 << 10);
        assert_eq!((s.min, s.avg, s.max), (32 << 10, 64 << 10, 512 << 10));
    }

    /// Hands out at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// `len` pseudo-random bytes from `seed`, with runs of zeros.
    pub(in super::super) fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Runs of zeros too, as in real files.
                if (i / 5000) % 7 == 0 {
                    0
                } else {
                    (x >> 33) as u8
                }
            })
            .collect()
    }

    #[test]
    fn cuts_are_fastcdcs_over_the_whole_file_whatever_the_read_sizes() {
        let (min, avg, max) = (1024, 4096, 16384);
        for (len, seed) in [(0, 1), (100, 2), (16384, 3), (300_000, 4), (1_000_003, 5)] {
            let d = data(len, seed);
            let want: Vec<&[u8]> = FastCDC::new(&d, min, avg, max)
                .map(|c| &d[c.offset..c.offset + c.length])
                .collect();
            for (step, refill, first) in [
                (1 << 20, None, None),
                (4096, None, None),
                (777, None, None),
                (1 << 20, Some(5000), None),
                (1 << 20, Some(5000), Some(3)),
                (1 << 20, Some(700), Some(40_000)),
            ] {
                let mut buf = Vec::new();
                let mut cutter =
                    Cutter::with_bounds(Trickle { data: &d, step }, &mut buf, min, avg, max);
                if let Some(r) = refill {
                    cutter = cutter.stepwise(r);
                }
                if let Some(f) = first {
                    cutter = cutter.first_read(f);
                }
                let got: Vec<Vec<u8>> = cutter.collect::<io::Result<_>>().unwrap();
                assert_eq!(got.len(), want.len(), "len {len} step {step}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(&g[..], *w, "len {len} step {step}");
                }
            }
        }
    }

    #[test]
    fn stepwise_refills_double_until_a_cut_so_a_long_chunk_takes_few_reads() {
        /// Counts the reads asked of it.
        struct Counting<'a>(&'a [u8], usize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 += 1;
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let (min, avg, max) = (1024, 4096, 16384);
        let d = data(200_000, 9);
        let want = FastCDC::new(&d, min, avg, max).count();
        let mut buf = Vec::new();
        let mut src = Counting(&d, 0);
        let cutter = Cutter::with_bounds(&mut src, &mut buf, min, avg, max).stepwise(16);
        assert_eq!(cutter.count(), want);
        // 16-byte steps, doubled: about log2(chunk / 16) reads per chunk,
        // not chunk / 16 (which would be ~300 per chunk here).
        assert!(src.1 <= want * 12, "{} reads for {want} chunks", src.1);
    }

    #[test]
    fn a_read_error_ends_the_chunks_with_it() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("EIO"))
            }
        }
        let mut buf = Vec::new();
        let mut c = Cutter::with_bounds(Broken, &mut buf, 64, 256, 1024);
        assert!(c.next().unwrap().is_err());
        assert!(c.next().is_none());
    }
}
