//! Writers that hash and count what passes through them.

use std::io::{self, Write};

/// Computes the BLAKE3 hash and byte count of everything written.
pub struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the hex BLAKE3 hash and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            self.hasher.finalize().to_hex().to_string(),
            self.bytes,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts bytes written.
pub struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> CountingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, bytes: 0 }
    }
    /// The inner writer and the count.
    pub fn into_inner(self) -> (W, u64) {
        (self.inner, self.bytes)
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// BLAKE3 of a whole regular file (never through a symlink, never a FIFO
/// or device: see [`crate::sys::fs::open_regular`]), read in large chunks.
pub fn hash_file(path: &std::path::Path) -> io::Result<(String, u64)> {
    let mut f = crate::sys::fs::open_regular(path)?;
    let mut h = blake3::Hasher::new();
    let n = io::copy(&mut f, &mut h)?;
    Ok((h.finalize().to_hex().to_string(), n))
}
