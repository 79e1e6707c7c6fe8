//! The archive format: a tree written as a standard pax tar stream (GNU tar
//! extracts it), compressed in parallel, hashed as it is written; and the
//! reverse: decoding, checking and extracting safely.

pub mod acl;
pub mod compress;
pub mod create;
pub mod exclude;
pub mod extract;
pub mod hashing;
pub mod idshift;
pub mod owners;
pub mod parallel;
pub mod pax;
pub mod read;
pub mod seekable;
pub mod size;
pub mod sparse;
pub mod walk;
mod xattr;

use std::io::{self, Read, Write};
use std::path::Path;

use crate::config::{Compression, Excludes};

pub use create::TreeReport;
pub use extract::{ExtractError, ExtractReport};

/// How to write an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveOptions {
    /// Compressor.
    pub compression: Compression,
    /// Level.
    pub level: i32,
    /// Compression threads for this one archive.
    pub threads: usize,
    /// Bytes/s written to the target, all writers together (`None`: no limit).
    pub bwlimit: Option<u64>,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// What the walk found.
    pub tree: TreeReport,
    /// Size of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Size of the compressed archive.
    pub size: u64,
    /// BLAKE3 of the compressed archive, hex.
    pub blake3: String,
}

/// Archives the tree at `root` into `dst`: walk → tar → compress → hash.
pub fn create_archive<W: Write>(
    root: &Path,
    dst: W,
    opts: &ArchiveOptions,
    excludes: &Excludes,
    progress: &(dyn Fn(u64) -> io::Result<()> + Sync),
) -> io::Result<(W, Written)> {
    let hashed = hashing::HashingWriter::new(dst);
    let enc = compress::Encoder::new(hashed, opts.compression, opts.level, opts.threads)?;
    let counted = hashing::CountingWriter::new(io::BufWriter::with_capacity(1 << 20, enc));
    let (counted, tree) = create::write_tree(root, counted, excludes, progress)?;
    let (buf, tar_bytes) = counted.into_inner();
    let enc = buf.into_inner().map_err(|e| e.into_error())?;
    let hashed = enc.finish()?;
    let (dst, blake3, size) = hashed.finish();
    Ok((
        dst,
        Written {
            tree,
            tar_bytes,
            size,
            blake3,
        },
    ))
}

/// Decodes an archive to its end (any supported compression) and returns the
/// number of entries; an error means the archive is damaged.
pub fn decode_to_end(src: impl Read) -> io::Result<u64> {
    let mut a = tar::Archive::new(compress::decoder(src)?);
    let mut n = 0;
    for e in a.entries()?.raw(true) {
        let mut e = e?;
        io::copy(&mut e, &mut io::sink())?;
        n += 1;
    }
    // Drain what follows the end-of-archive blocks, so the compressed
    // stream is checked to its very end.
    io::copy(&mut a.into_inner(), &mut io::sink())?;
    Ok(n)
}
