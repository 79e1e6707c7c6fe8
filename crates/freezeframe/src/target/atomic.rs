//! Durable, all-or-nothing files: written under a temporary name (mode 0600),
//! fsynced, renamed into place, and the directory fsynced.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::sys::fs::fsync_dir;

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
        let dir = dest.parent().unwrap_or(Path::new("."));
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

    /// Flushes, fsyncs, renames into place (never over an existing file) and
    /// fsyncs the directory.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.tmp.as_file_mut().flush()?;
        self.tmp.as_file().sync_all()?;
        self.tmp.persist_noclobber(&self.dest).map_err(|e| {
            io::Error::new(
                e.error.kind(),
                format!("{}: {}", self.dest.display(), e.error),
            )
        })?;
        fsync_dir(self.dest.parent().unwrap_or(Path::new(".")))?;
        Ok(self.dest)
    }
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
