//! A repository snapshot as a [`BackupView`]: a folder's tree blob is read
//! when the folder is first listed, a file's data blobs when its bytes are
//! read, through rustic_core's blob cache (32 MiB, by weight), so memory
//! stays bounded whatever the file's size. The reserved `.freezeframe/`
//! folder is not shown.

use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{Node, NodeType};
use rustic_core::vfs::OpenFile;
use rustic_core::{IndexedFullStatus, Repository, TreeId};

use super::browse::kind_of;
use super::tar_stream::split_dev;
use super::write::HeldLock;
use crate::archive::walk::Kind;
use crate::sys::time::Timestamp;
use crate::target::repository::gomode::posix_mode;
use crate::target::repository::{RepoError, RESERVED_DIR};
use crate::target::view::{is_file_name, BackupView, NodeRef, ViewEntry};
use crate::target::TargetError;

/// Files kept open (their blob lists and offsets) between reads.
const OPEN_FILES: usize = 64;

/// The repository, indexed, shared by the views of all its snapshots.
pub struct Reader {
    repo: Repository<IndexedFullStatus>,
    _lock: HeldLock,
}

impl Reader {
    pub(super) fn new(repo: Repository<IndexedFullStatus>, lock: HeldLock) -> Self {
        Reader { repo, _lock: lock }
    }
}

/// What a [`NodeRef`] of a repository view stands for.
enum Known {
    Dir(Option<TreeId>),
    File(Box<Node>),
    Other,
}

/// One snapshot, readable at random.
pub struct RepoView {
    reader: Arc<Reader>,
    root: TreeId,
    /// `NodeRef(i)` is `known[i]`; 0 is the root.
    known: Mutex<Vec<Known>>,
    open: Mutex<Vec<(NodeRef, Arc<OpenFile>)>>,
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> TargetError {
    TargetError::Repository(RepoError::Invalid(format!("{}: {e}", what.into())))
}

/// A tree node's metadata, as the view shows it.
fn entry_of(n: &Node, node: NodeRef) -> ViewEntry {
    let m = &n.meta;
    let link = match &n.node_type {
        NodeType::Symlink { .. } => Some(n.node_type.to_link().as_os_str().as_bytes().to_vec()),
        _ => None,
    };
    ViewEntry {
        name: n.name().as_bytes().to_vec(),
        node,
        kind: kind_of(n),
        mode: posix_mode(m.mode.unwrap_or(0o644)),
        uid: m.uid.unwrap_or(0),
        gid: m.gid.unwrap_or(0),
        size: match (&n.node_type, &link) {
            (NodeType::File, _) => m.size,
            (_, Some(l)) => l.len() as u64,
            _ => 0,
        },
        mtime_ns: m
            .mtime
            .as_ref()
            .map(|t| Timestamp::new(t.as_second(), i64::from(t.subsec_nanosecond())).as_ns())
            .unwrap_or(0),
        link,
        device: match n.node_type {
            NodeType::Dev { device } | NodeType::Chardev { device } => Some(split_dev(device)),
            _ => None,
        },
        links: u32::try_from(m.links.max(1)).unwrap_or(u32::MAX),
        xattrs: m
            .extended_attributes
            .iter()
            .map(|x| {
                (
                    x.name.as_bytes().to_vec(),
                    x.value.clone().unwrap_or_default(),
                )
            })
            .collect(),
    }
}

impl RepoView {
    pub(super) fn new(reader: Arc<Reader>, root: TreeId) -> Self {
        RepoView {
            reader,
            root,
            known: Mutex::new(vec![Known::Dir(Some(root))]),
            open: Mutex::new(Vec::new()),
        }
    }

    fn open_file(&self, file: NodeRef) -> Result<Arc<OpenFile>, TargetError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = open.iter().position(|(r, _)| *r == file) {
            let hit = open.remove(i);
            let f = hit.1.clone();
            open.push(hit);
            return Ok(f);
        }
        let node = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            match known.get(file.0 as usize) {
                Some(Known::File(n)) => n.clone(),
                _ => return Err(err("reading", format!("entry {} is not a file", file.0))),
            }
        };
        let f = Arc::new(
            self.reader
                .repo
                .open_file(&node)
                .map_err(|e| err("opening a file of the snapshot", e))?,
        );
        if open.len() >= OPEN_FILES {
            open.remove(0);
        }
        open.push((file, f.clone()));
        Ok(f)
    }
}

impl BackupView for RepoView {
    fn children(&self, dir: NodeRef) -> Result<Vec<ViewEntry>, TargetError> {
        let tree = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            match known.get(dir.0 as usize) {
                Some(Known::Dir(t)) => *t,
                _ => return Err(err("listing", format!("entry {} is not a folder", dir.0))),
            }
        };
        let Some(tree) = tree else {
            return Ok(Vec::new());
        };
        let nodes = self
            .reader
            .repo
            .get_tree(&tree)
            .map_err(|e| err(format!("reading tree {tree}"), e))?
            .nodes;
        let top = tree == self.root && dir == NodeRef::ROOT;
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<ViewEntry> = nodes
            .into_iter()
            .filter(|n| is_file_name(n.name().as_bytes()))
            .filter(|n| !(top && n.name().as_bytes() == RESERVED_DIR.as_bytes()))
            .map(|n| {
                let r = NodeRef(known.len() as u64);
                let e = entry_of(&n, r);
                known.push(match e.kind {
                    Kind::Dir => Known::Dir(n.subtree),
                    Kind::File => Known::File(Box::new(n)),
                    _ => Known::Other,
                });
                e
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|b, a| a.name == b.name);
        Ok(out)
    }

    fn read(&self, file: NodeRef, offset: u64, len: usize) -> Result<Vec<u8>, TargetError> {
        let f = self.open_file(file)?;
        let Ok(offset) = usize::try_from(offset) else {
            return Ok(Vec::new());
        };
        let bytes = self
            .reader
            .repo
            .read_file_at(&f, offset, len)
            .map_err(|e| err("reading a file of the snapshot", e))?;
        Ok(bytes.to_vec())
    }
}
