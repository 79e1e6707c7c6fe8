//! Durable, all-or-nothing files: written under a temporary name (mode 0600),
//! fsynced, renamed into place, and the directory fsynced.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::fs::fsync_dir;

/// Prefix of temporary files; anything with it is an unfinished write.
pub const TEMP_PREFIX: &str = ".ff-tmp-";

/// A file being written; it appears under its final name only on
/// [`AtomicFile::commit`]. Dropped without commit, it disappears.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing what will become `dest`.
    pub fn create(dest: &Path) -> io::Result<Self> {
        let dir = parent_of(dest);
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)?;
        Ok(Self {
            tmp,
            dest: dest.to_owned(),
        })
    }

    /// The open file to write to.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Flushes, fsyncs, renames into place (never over an existing file:
    /// that is an [`io::ErrorKind::AlreadyExists`] error) and fsyncs the
    /// directory. Errors do not repeat the path: callers name it.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.tmp.as_file_mut().flush()?;
        self.tmp.as_file().sync_all()?;
        self.tmp
            .persist_noclobber(&self.dest)
            .map_err(|e| e.error)?;
        fsync_dir(parent_of(&self.dest))?;
        Ok(self.dest)
    }
}

/// The folder holding `dest` (`.` for a bare file name).
fn parent_of(dest: &Path) -> &Path {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `dest` (which may exist) with `data` atomically: readers see
/// the old content or the new, never a mix or nothing.
pub fn replace(dest: &Path, data: &[u8]) -> io::Result<()> {
    replace_with_mode(dest, data, 0o600)
}

/// [`replace`], the new file with permission bits `mode`.
pub fn replace_with_mode(dest: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    if mode != 0o600 {
        f.file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    f.file().write_all(data)?;
    f.tmp.as_file_mut().flush()?;
    f.tmp.as_file().sync_all()?;
    f.tmp.persist(&f.dest).map_err(|e| e.error)?;
    fsync_dir(parent_of(dest))
}

/// Writes `data` to `dest` atomically.
pub fn write(dest: &Path, data: &[u8]) -> io::Result<PathBuf> {
    let mut f = AtomicFile::create(dest)?;
    f.file().write_all(data)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn commit_publishes_0600_file_and_drop_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        write(&p, b"hi").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hi");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        {
            let mut f = AtomicFile::create(&d.path().join("b.txt")).unwrap();
            f.file().write_all(b"half").unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
        // never over an existing file
        assert!(write(&p, b"again").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"hi");
    }
}
