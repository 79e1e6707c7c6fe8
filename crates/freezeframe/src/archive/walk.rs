//! Walking a tree relative to directory descriptors: every entry is
//! looked at, opened and read through its parent folder's descriptor and
//! its own name, never through a full path, so a tree of any depth is
//! walked whole (a path longer than `PATH_MAX` is legal; `open(2)` of it
//! fails with `ENAMETOOLONG`). Entries come depth-first, children sorted by
//! name, folders before their contents: the order both targets write.
//!
//! Only a bounded number of ancestor folders stay open; a folder whose
//! descriptor was closed is found again through `..` of its child and
//! checked to be the same inode.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, StatxAttributes, StatxFlags};

use crate::sys::time::Timestamp;

/// Most folder descriptors held open at once (the deepest ancestors).
const MAX_OPEN_DIRS: usize = 64;

/// What kind of entry (as `ls --json` names it: `dir`, `file`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A folder.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A socket.
    Socket,
}

impl Kind {
    /// Its name: `dir`, `file`, `symlink`, `fifo`, `char`, `block`, `socket`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Socket => "socket",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An entry's metadata, as `statx` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Kind.
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Hard links.
    pub nlink: u64,
    /// Device of the file system holding it.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Device number of a device node.
    pub rdev: u64,
    /// Last data change.
    pub mtime: Timestamp,
    /// Last access.
    pub atime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// It is the root of a mount (a mount point inside the tree).
    pub mount_root: bool,
}

fn ts(t: rustix::fs::StatxTimestamp) -> Timestamp {
    Timestamp::new(t.tv_sec, i64::from(t.tv_nsec))
}

impl Meta {
    fn from_statx(s: &rustix::fs::Statx) -> io::Result<Self> {
        let mode = u32::from(s.stx_mode);
        let kind = match mode & 0o170000 {
            0o040000 => Kind::Dir,
            0o100000 => Kind::File,
            0o120000 => Kind::Symlink,
            0o010000 => Kind::Fifo,
            0o020000 => Kind::Char,
            0o060000 => Kind::Block,
            0o140000 => Kind::Socket,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown file type {other:o}"),
                ))
            }
        };
        Ok(Self {
            kind,
            mode: mode & 0o7777,
            uid: s.stx_uid,
            gid: s.stx_gid,
            size: s.stx_size,
            blocks: s.stx_blocks,
            nlink: u64::from(s.stx_nlink),
            dev: rustix::fs::makedev(s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
            rdev: rustix::fs::makedev(s.stx_rdev_major, s.stx_rdev_minor),
            mtime: ts(s.stx_mtime),
            atime: ts(s.stx_atime),
            ctime: ts(s.stx_ctime),
            mount_root: s.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && s.stx_attributes.contains(StatxAttributes::MOUNT_ROOT),
        })
    }

    /// Whether it is a folder.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// `statx` of `name` in `dir`, not following a final symlink.
fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Meta> {
    let s = rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::BASIC_STATS,
    )?;
    Meta::from_statx(&s)
}

/// One entry of the walk, with what is needed to read it.
pub struct Entry<'w> {
    /// Its folder (the root itself for the root, named `.`).
    dir: BorrowedFd<'w>,
    name: &'w OsStr,
    /// Its path relative to the root: `.` for the root, `./a/b` below it.
    pub rel: &'w [u8],
    /// Its metadata.
    pub meta: &'w Meta,
}

impl Entry<'_> {
    /// Its name in its folder (`.` for the root).
    pub fn name(&self) -> &OsStr {
        self.name
    }

    /// Opens a regular file for reading, never through a symlink and never
    /// blocking on a FIFO swapped in; refuses one that is no longer the
    /// inode the walk saw.
    pub fn open(&self) -> io::Result<File> {
        let fd = rustix::fs::openat(
            self.dir,
            self.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        if st.st_ino != self.meta.ino || (st.st_mode & 0o170000) != 0o100000 {
            return Err(io::Error::other(
                "replaced by another file while being read",
            ));
        }
        Ok(File::from(fd))
    }

    /// The target of a symlink.
    pub fn read_link(&self) -> io::Result<OsString> {
        let t = rustix::fs::readlinkat(self.dir, self.name, Vec::new())?;
        Ok(OsString::from_vec(t.into_bytes()))
    }

    /// Every extended attribute, in name order (none where the file system
    /// has no xattrs).
    pub fn xattrs(&self) -> io::Result<Vec<(String, Vec<u8>)>> {
        super::xattr::read_all_at(self.dir, self.name)
    }

    /// Sets one extended attribute (the entry itself, never a symlink's
    /// target).
    pub fn set_xattr(&self, key: &str, value: &[u8]) -> io::Result<()> {
        super::xattr::set_at(self.dir, self.name, key, value)
    }

    /// Changes its owner (a symlink itself, not its target).
    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        rustix::fs::chownat(
            self.dir,
            self.name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Sets its permission bits (not for symlinks, which have none).
    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        rustix::fs::chmodat(
            self.dir,
            self.name,
            Mode::from_raw_mode(mode & 0o7777),
            AtFlags::empty(),
        )?;
        Ok(())
    }
}

use crate::sys::shown::escape;
use std::os::unix::ffi::OsStringExt;

/// What the walk reports to.
pub trait Visitor {
    /// An entry was found. For a folder, returns whether to walk into it.
    fn visit(&mut self, entry: &Entry<'_>) -> io::Result<bool>;
    /// Every entry below the folder `rel` has been visited.
    fn leave(&mut self, _rel: &[u8]) -> io::Result<()> {
        Ok(())
    }
    /// `rel` could not be looked at (`what` says at what step): it is left
    /// out. Never fatal.
    fn problem(&mut self, rel: &[u8], what: &str, error: &io::Error);
}

/// A folder being walked.
struct Frame {
    fd: Option<OwnedFd>,
    dev: u64,
    ino: u64,
    rel: Vec<u8>,
    /// Children still to visit, in reverse order.
    children: Vec<OsString>,
}

fn open_dir(at: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The names in a folder, sorted, without `.` and `..`.
fn children(fd: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    }
    names.sort();
    names.reverse();
    Ok(names)
}

fn child_rel(parent: &[u8], name: &OsStr) -> Vec<u8> {
    let mut r = parent.to_vec();
    r.push(b'/');
    r.extend_from_slice(name.as_bytes());
    r
}

/// Walks the tree at `root` (a folder), reporting to `v`. Fails only if
/// the root cannot be read or a visitor call fails; anything below that
/// cannot be read is a [`Visitor::problem`].
pub fn walk(root: &Path, v: &mut dyn Visitor) -> io::Result<()> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: {e}", root.display()),
        )
    })?;
    let dot = OsStr::new(".");
    let meta = stat_at(root_fd.as_fd(), dot)?;
    let rel = b".".to_vec();
    let descend = v.visit(&Entry {
        dir: root_fd.as_fd(),
        name: dot,
        rel: &rel,
        meta: &meta,
    })?;
    if !descend {
        return Ok(());
    }
    let kids = match children(&root_fd) {
        Ok(k) => k,
        Err(e) => {
            v.problem(&rel, "cannot list folder", &e);
            return v.leave(&rel);
        }
    };
    let mut stack = vec![Frame {
        fd: Some(root_fd),
        dev: meta.dev,
        ino: meta.ino,
        rel,
        children: kids,
    }];
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        let Some(name) = top.children.pop() else {
            let done = stack.pop().expect("a frame");
            v.leave(&done.rel)?;
            if let Some(parent) = stack.last_mut() {
                if parent.fd.is_none() {
                    parent.fd = Some(reopen_parent(&done, parent)?);
                }
            }
            continue;
        };
        let dir = top.fd.as_ref().expect("the deepest folders stay open");
        let rel = child_rel(&top.rel, &name);
        let meta = match stat_at(dir.as_fd(), &name) {
            Ok(m) => m,
            Err(e) => {
                v.problem(&rel, "vanished or unreadable", &e);
                continue;
            }
        };
        let descend = v.visit(&Entry {
            dir: dir.as_fd(),
            name: &name,
            rel: &rel,
            meta: &meta,
        })?;
        if !descend || !meta.is_dir() {
            continue;
        }
        let fd = match open_dir(dir.as_fd(), &name) {
            Ok(fd) => fd,
            Err(e) => {
                v.problem(&rel, "cannot list folder", &e);
                v.leave(&rel)?;
                continue;
            }
        };
        let st = rustix::fs::fstat(&fd)?;
        if st.st_ino != meta.ino {
            v.problem(
                &rel,
                "cannot list folder",
                &io::Error::other("replaced while being walked"),
            );
            v.leave(&rel)?;
            continue;
        }
        let kids = match children(&fd) {
            Ok(k) => k,
            Err(e) => {
                v.problem(&rel, "cannot list folder", &e);
                v.leave(&rel)?;
                continue;
            }
        };
        stack.push(Frame {
            fd: Some(fd),
            dev: meta.dev,
            ino: meta.ino,
            rel,
            children: kids,
        });
        // Keep only the deepest folders open.
        if stack.len() > MAX_OPEN_DIRS {
            let i = stack.len() - MAX_OPEN_DIRS - 1;
            stack[i].fd = None;
        }
    }
}

/// The descriptor of `parent`, found again as `..` of its child `child`.
fn reopen_parent(child: &Frame, parent: &Frame) -> io::Result<OwnedFd> {
    let fd = child.fd.as_ref().expect("a folder just left is still open");
    let up = open_dir(fd.as_fd(), OsStr::new(".."))?;
    let st = rustix::fs::fstat(&up)?;
    if st.st_ino != parent.ino || st.st_dev != parent.dev {
        return Err(io::Error::other(format!(
            "{}: the folder moved while it was walked",
            escape(&parent.rel)
        )));
    }
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record {
        events: Vec<String>,
        problems: Vec<String>,
    }

    impl Visitor for Record {
        fn visit(&mut self, e: &Entry<'_>) -> io::Result<bool> {
            self.events.push(format!(
                "{} {:?}",
                String::from_utf8_lossy(e.rel),
                e.meta.kind
            ));
            if e.meta.kind == Kind::File {
                let mut s = String::new();
                io::Read::read_to_string(&mut e.open()?, &mut s)?;
                self.events.push(format!("  = {s}"));
            }
            if e.meta.kind == Kind::Symlink {
                self.events
                    .push(format!("  -> {}", e.read_link()?.to_string_lossy()));
            }
            Ok(true)
        }
        fn leave(&mut self, rel: &[u8]) -> io::Result<()> {
            self.events
                .push(format!("leave {}", String::from_utf8_lossy(rel)));
            Ok(())
        }
        fn problem(&mut self, rel: &[u8], what: &str, e: &io::Error) {
            self.problems
                .push(format!("{}: {what}: {e}", String::from_utf8_lossy(rel)));
        }
    }

    #[test]
    fn depth_first_sorted_folders_first() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b/c")).unwrap();
        std::fs::write(d.path().join("b/c/f"), "deep").unwrap();
        std::fs::write(d.path().join("a"), "top").unwrap();
        std::os::unix::fs::symlink("a", d.path().join("z")).unwrap();
        let mut r = Record::default();
        walk(d.path(), &mut r).unwrap();
        assert_eq!(
            r.events,
            [
                ". Dir",
                "./a File",
                "  = top",
                "./b Dir",
                "./b/c Dir",
                "./b/c/f File",
                "  = deep",
                "leave ./b/c",
                "leave ./b",
                "./z Symlink",
                "  -> a",
                "leave .",
            ]
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }

    #[test]
    fn a_tree_deeper_than_path_max_and_the_open_folder_limit_is_walked_whole() {
        let d = tempfile::tempdir().unwrap();
        // 200 levels of 40-character names: 8 KiB of path, twice PATH_MAX.
        let seg = "s".repeat(40);
        let mut dir =
            rustix::fs::open(d.path(), OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
        for _ in 0..200 {
            rustix::fs::mkdirat(&dir, seg.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            dir = open_dir(dir.as_fd(), OsStr::new(&seg)).unwrap();
        }
        let f = rustix::fs::openat(
            &dir,
            "leaf",
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, b"bottom").unwrap();
        // A sibling after the deep branch: found by going back up.
        std::fs::write(d.path().join("t"), "after").unwrap();
        let mut r = Record::default();
        walk(d.path(), &mut r).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let leaf = r
            .events
            .iter()
            .position(|e| e.ends_with("/leaf File"))
            .unwrap();
        assert!(r.events[leaf].len() > 8000);
        assert_eq!(r.events[leaf + 1], "  = bottom");
        assert_eq!(
            r.events.iter().filter(|e| e.starts_with("leave")).count(),
            201
        );
        assert_eq!(r.events[r.events.len() - 3], "./t File");
        // Clean up a tree `remove_dir_all` may not manage by path.
        drop(dir);
        std::process::Command::new("rm")
            .arg("-rf")
            .arg(d.path().join(&seg))
            .status()
            .unwrap();
    }
}
