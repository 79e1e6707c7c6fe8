//! One backup opened for reading at random, as a filesystem needs it: a
//! folder's entries when it is first looked into, a file's bytes at any
//! offset. Both kinds of target give the same face (`Target::view`); the
//! FUSE mount of the binary is written against it alone.

use crate::archive::walk::Kind;
use crate::target::TargetError;

/// An entry of a backup, as its view names it, valid for the view's life
/// (a tar view names each entry once, hardlinks alike; a repository view
/// names the entries of a folder anew each time it lists it, so a caller
/// lists each folder once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeRef(pub u64);

impl NodeRef {
    /// The backup's root folder.
    pub const ROOT: NodeRef = NodeRef(0);
}

/// One entry of a folder, with everything `stat`, `readlink` and the
/// xattr calls show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEntry {
    /// Its name in the folder (never empty, `.`, `..`, or with a `/`).
    pub name: Vec<u8>,
    /// Who it is.
    pub node: NodeRef,
    /// Its type.
    pub kind: Kind,
    /// Permission bits with setuid, setgid, sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (regular files; a symlink's target length).
    pub size: u64,
    /// Last modification, ns since the epoch.
    pub mtime_ns: i128,
    /// A symlink's target, as stored.
    pub link: Option<Vec<u8>>,
    /// A device's major and minor number.
    pub device: Option<(u64, u64)>,
    /// How many names the entry has (hardlinks).
    pub links: u32,
    /// Extended attributes (ACLs as `system.posix_acl_*`), as stored.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One backup, readable at random. Implementations are safe to share
/// between the filesystem's threads.
pub trait BackupView: Send + Sync {
    /// The entries of folder `dir` ([`NodeRef::ROOT`]: the backup's root),
    /// in name order. Entries whose stored names could not be a file
    /// name are left out.
    fn children(&self, dir: NodeRef) -> Result<Vec<ViewEntry>, TargetError>;
    /// Up to `len` bytes of regular file `file` from `offset` (fewer only
    /// at its end).
    fn read(&self, file: NodeRef, offset: u64, len: usize) -> Result<Vec<u8>, TargetError>;
    /// What an operator should know about this backup's view: entries
    /// left out, what random access costs.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Whether `name` can be a name in a folder.
pub fn is_file_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}
