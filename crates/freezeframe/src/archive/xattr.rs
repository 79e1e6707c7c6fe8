//! Reading extended attributes (without following symlinks).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the kernel shows this process's open descriptors as folders.
const PROC_SELF_FD: &str = "/proc/self/fd";

/// All extended attributes of `name` in the folder `dir` (see
/// [`read_all`]). Linux has no `*at` call for xattrs before 6.13, so the
/// entry is named through `/proc/self/fd/<dir>/<name>`: a short path
/// whatever the depth of `dir`, resolved by the kernel from the
/// descriptor, with `name` itself not followed.
pub fn read_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut p = PathBuf::from(format!("{PROC_SELF_FD}/{}", dir.as_raw_fd()));
    p.push(name);
    read_all(&p)
}

/// Sets the extended attribute `key` of `name` in the folder `dir`, named
/// as [`read_all_at`] names it (the final name is not followed).
pub fn set_at(dir: BorrowedFd<'_>, name: &OsStr, key: &str, value: &[u8]) -> io::Result<()> {
    let mut p = PathBuf::from(format!("{PROC_SELF_FD}/{}", dir.as_raw_fd()));
    p.push(name);
    rustix::fs::lsetxattr(&p, key, value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// All extended attributes of `path` (not following a final symlink), in
/// name order. A file system without xattr support yields none.
pub fn read_all(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = Vec::new();
    loop {
        let n = match rustix::fs::llistxattr_query(path) {
            Ok(n) => n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        names.resize(n, 0);
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(got) => {
                names.truncate(got);
                break;
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = Vec::new();
    for raw in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("xattr name {:?} is not UTF-8", OsStr::from_bytes(raw)),
            ));
        };
        let mut value = Vec::new();
        loop {
            let n = match rustix::fs::lgetxattr_query(path, name) {
                Ok(n) => n,
                Err(rustix::io::Errno::NODATA) => break,
                Err(e) => return Err(e.into()),
            };
            value.resize(n, 0);
            match rustix::fs::lgetxattr(path, name, &mut value[..]) {
                Ok(got) => {
                    value.truncate(got);
                    out.push((name.to_owned(), std::mem::take(&mut value)));
                    break;
                }
                Err(rustix::io::Errno::RANGE) => continue,
                Err(rustix::io::Errno::NODATA) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    out.sort();
    Ok(out)
}
