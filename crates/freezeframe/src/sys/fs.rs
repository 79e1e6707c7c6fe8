//! Small file-system helpers: file system type, `syncfs`, durable writes.

use std::fs::File;
use std::io;
use std::path::Path;

/// `f_type` of btrfs in `statfs(2)`.
pub const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

/// The `statfs` magic number of the file system holding `path`.
pub fn fs_magic(path: &Path) -> io::Result<i64> {
    let st = rustix::fs::statfs(path)?;
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

/// Flushes the file system holding `path` (`syncfs(2)`).
pub fn syncfs(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    rustix::fs::syncfs(&f)?;
    Ok(())
}

/// Flushes a directory's entries to disk (after a rename into it).
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
