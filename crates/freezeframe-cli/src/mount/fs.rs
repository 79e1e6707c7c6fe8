//! The FUSE side of `freezeframe mount`: each request answered from the
//! [`Tree`]; read-only (the mount is `ro`, and opening for writing is
//! refused), every answer cacheable (a backup never changes).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use freezeframe::EntryKind;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    ReplyXattr, Request,
};

use super::tree::{Failed, Inode, Tree};

/// How long the kernel may cache what it was told: backups do not change.
const TTL: Duration = Duration::from_secs(3600);

/// The file system.
pub struct BackupFs {
    tree: Tree,
}

impl BackupFs {
    /// Serves `tree`.
    pub fn new(tree: Tree) -> Self {
        BackupFs { tree }
    }
}

fn kind_of(k: EntryKind) -> FileType {
    match k {
        EntryKind::Dir => FileType::Directory,
        EntryKind::File => FileType::RegularFile,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::Char => FileType::CharDevice,
        EntryKind::Block => FileType::BlockDevice,
        EntryKind::Socket => FileType::Socket,
    }
}

fn time_of(ns: i128) -> SystemTime {
    let d = |n: i128| Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32);
    if ns >= 0 {
        UNIX_EPOCH + d(ns)
    } else {
        UNIX_EPOCH.checked_sub(d(-ns)).unwrap_or(UNIX_EPOCH)
    }
}

/// Linux's `makedev` for the 32-bit `rdev` FUSE carries.
fn rdev(major: u64, minor: u64) -> u32 {
    ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)) as u32
}

fn attr_of(ino: u64, n: &Inode) -> FileAttr {
    let e = &n.entry;
    let t = time_of(e.mtime_ns);
    FileAttr {
        ino: INodeNo(ino),
        size: e.size,
        blocks: e.size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: kind_of(e.kind),
        perm: (e.mode & 0o7777) as u16,
        nlink: e.links.max(1),
        uid: e.uid,
        gid: e.gid,
        rdev: e.device.map_or(0, |(a, b)| rdev(a, b)),
        blksize: 4096,
        flags: 0,
    }
}

fn eio(f: Failed) -> Errno {
    tracing::warn!("{}", f.0);
    Errno::EIO
}

/// Answers an xattr request with `data`: its size when asked for it,
/// ERANGE when the caller's buffer is too small.
fn xattr_reply(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if (size as usize) < data.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(data);
    }
}

impl Filesystem for BackupFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.tree.lookup(parent.0, name.as_bytes()) {
            Ok(Some(ino)) => match self.tree.get(ino) {
                Some(n) => reply.entry(&TTL, &attr_of(ino, &n), Generation(0)),
                None => reply.error(Errno::ENOENT),
            },
            Ok(None) => reply.error(Errno::ENOENT),
            Err(f) => reply.error(eio(f)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree.get(ino.0) {
            Some(n) => reply.attr(&TTL, &attr_of(ino.0, &n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.tree.readlink(ino.0) {
            Some(t) => reply.data(&t),
            None => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.tree.get(ino.0) {
            Some(n) if n.entry.kind == EntryKind::File => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Some(_) => reply.error(Errno::EACCES),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.tree.read(ino.0, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(f) => reply.error(eio(f)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: fuser::ReplyEmpty,
    ) {
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(node) = self.tree.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let kids = match self.tree.children(ino.0) {
            Ok(k) => k,
            Err(f) => return reply.error(eio(f)),
        };
        let dots = [
            (ino.0, FileType::Directory, &b"."[..]),
            (node.parent, FileType::Directory, &b".."[..]),
        ];
        let all = dots.into_iter().chain(kids.iter().map(|(name, i)| {
            let k = self
                .tree
                .get(*i)
                .map_or(FileType::RegularFile, |n| kind_of(n.entry.kind));
            (*i, k, name.as_slice())
        }));
        for (i, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(child),
                (i + 1) as u64,
                kind,
                OsStr::from_bytes(name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(n) = self.tree.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        match n.entry.xattrs.iter().find(|(k, _)| k == name.as_bytes()) {
            Some((_, v)) => xattr_reply(reply, size, v),
            None => reply.error(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let Some(n) = self.tree.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let mut names = Vec::new();
        for (k, _) in &n.entry.xattrs {
            names.extend_from_slice(k);
            names.push(0);
        }
        xattr_reply(reply, size, &names);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_as_linux_packs_them() {
        assert_eq!(rdev(1, 3), 0x103);
        assert_eq!(rdev(8, 0x1234), 0x0120_0834);
    }

    #[test]
    fn times_before_the_epoch_stay_representable() {
        assert_eq!(
            time_of(1_500_000_000),
            UNIX_EPOCH + Duration::new(1, 500_000_000)
        );
        assert!(time_of(-2_000_000_000) < UNIX_EPOCH);
    }
}
