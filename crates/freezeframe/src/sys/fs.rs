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

/// Opens `path` for reading only if it is a regular file, without following
/// a symlink at its end and without blocking (a FIFO or device planted in
/// its place is refused at once instead of hanging or reading forever).
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symlink, not a regular file: refused",
            ),
            _ => e,
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is not a regular file ({}): refused", kind_name(&kind)),
        ));
    }
    Ok(file)
}

/// Tells the kernel that `file` will be read in a few places far apart:
/// no readahead, so what comes off the disk is what is asked for. Only
/// advice: where the kernel does not take it, reads stay correct.
pub fn advise_random(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Random);
}

/// Asks the kernel to start reading `len` bytes of `file` at `offset`
/// into the page cache, without waiting: the reads that follow find them
/// there. Only advice, as [`advise_random`].
pub fn advise_willneed(file: &File, offset: u64, len: u64) {
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::WillNeed);
    }
}

fn kind_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "not a file"
    }
}

/// Reads the regular file `path` ([`open_regular`]) whole, refusing one
/// larger than `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is {len} bytes, more than the {max} bytes such a file can be: refused"),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    // `take`: a file that grows while it is read is cut at the limit.
    file.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("grew past {max} bytes while read: refused"),
        ));
    }
    Ok(buf)
}

/// Checks, without writing anything, that `dir` is (or could be created as)
/// a folder this process can write into: it is a folder with write and
/// search permission, or it does not exist and its nearest existing
/// ancestor is such a folder. What `--dry-run` uses in place of creating
/// the target and state folders.
pub fn check_dir_usable(dir: &Path) -> io::Result<()> {
    use rustix::fs::{access, Access};
    let mut p = dir;
    // Names the ancestor at fault, if it is not `dir` itself.
    let problem = |p: &Path, what: &str| {
        if p == dir {
            what.to_owned()
        } else {
            format!("cannot be created: {} {what}", p.display())
        }
    };
    loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                return access(p, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
                    let e = io::Error::from(e);
                    io::Error::new(e.kind(), problem(p, &format!("is not writable: {e}")))
                });
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    problem(p, "is a file, not a folder"),
                ))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                match p.parent() {
                    Some(parent) => p = parent,
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read_and_within_bounds() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_regular(&f, 5).unwrap(), b"12345");
        let e = read_regular(&f, 4).unwrap_err().to_string();
        assert!(e.contains("more than the 4 bytes"), "{e}");
        let link = d.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_regular(&link, 100).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Would block forever if opened for reading the ordinary way.
        let e = read_regular(&fifo, 100).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let e = read_regular(d.path(), 100).unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
    }

    #[test]
    fn usable_dirs_are_checked_without_writing() {
        let d = tempfile::tempdir().unwrap();
        check_dir_usable(d.path()).unwrap();
        check_dir_usable(&d.path().join("new/deeper")).unwrap();
        assert!(!d.path().join("new").exists(), "nothing created");
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        let e = check_dir_usable(&f).unwrap_err().to_string();
        assert!(e.contains("is a file"), "{e}");
        let e = check_dir_usable(&f.join("below")).unwrap_err().to_string();
        assert!(e.contains("is a file"), "{e}");
    }
}
