//! Folders, bottom-up: the walk comes in path order, so the folders open
//! form a stack; a folder is closed when the walk leaves it, its files'
//! chunk ids are collected, its listing is serialised as restic's tree
//! JSON (nodes by name, a newline at the end) and stored unless the
//! repository has it. Beside each open folder lies the parent snapshot's
//! tree of the same path, where unchanged files find their blob lists.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustic_core::repofile::{Node, NodeType, Tree};
use rustic_core::{DataId, Id, TreeId};

use super::chunks::PendingId;
use super::index::Known;
use super::pack::{sha256, BlobKind, Hash, PackBuilder, WrittenPack};
use super::store::{id_bytes, Store};
use super::WriteError;

/// A tree pack is written once it holds this much.
const TREE_PACK_SIZE: usize = 4 << 20;

/// One entry of an open folder.
pub(crate) struct Slot {
    /// Its node (content and subtree filled in when known).
    pub node: Node,
    /// A file's chunks, in order, when it was read.
    pub chunks: Vec<PendingId>,
}

impl Slot {
    /// An entry with nothing to read (a folder, a symlink, a file whose
    /// content is known).
    pub(crate) fn bare(node: Node) -> Self {
        Self {
            node,
            chunks: Vec::new(),
        }
    }
}

/// An open folder.
struct Frame {
    path: PathBuf,
    slots: Vec<Slot>,
    /// The parent snapshot's nodes of this folder, by name.
    parent: HashMap<String, Node>,
    /// The parent snapshot's tree id of this folder.
    parent_id: Option<Hash>,
}

/// What the trees added.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TreeCounts {
    /// Folders whose tree is new / differs from the parent's / is equal.
    pub dirs_new: u64,
    /// Folders that differ from the parent snapshot's.
    pub dirs_changed: u64,
    /// Folders equal to the parent snapshot's.
    pub dirs_unmodified: u64,
    /// New tree blobs stored.
    pub blobs: u64,
    /// Their plain bytes.
    pub bytes: u64,
    /// Their stored bytes.
    pub stored: u64,
}

/// The stack of open folders and the tree packer.
pub(crate) struct Trees<'s> {
    store: &'s Store,
    known: Arc<RwLock<Known>>,
    stack: Vec<Frame>,
    pack: PackBuilder,
    written: Vec<WrittenPack>,
    seen: HashSet<Hash>,
    /// Counts so far.
    pub counts: TreeCounts,
    /// Parent trees that could not be read (their files are read again).
    pub warnings: Vec<String>,
}

impl<'s> Trees<'s> {
    /// Opens the root folder `root`, beside the parent snapshot's root tree.
    pub(crate) fn new(
        store: &'s Store,
        known: Arc<RwLock<Known>>,
        root: PathBuf,
        parent_root: Option<Hash>,
    ) -> Self {
        let mut t = Self {
            store,
            known,
            stack: Vec::new(),
            pack: PackBuilder::default(),
            written: Vec::new(),
            seen: HashSet::new(),
            counts: TreeCounts::default(),
            warnings: Vec::new(),
        };
        let parent = t.parent_tree(parent_root);
        t.stack.push(Frame {
            path: root,
            slots: Vec::new(),
            parent,
            parent_id: parent_root,
        });
        t
    }

    /// Closes folders until `dir` is the innermost open one.
    pub(crate) fn enter(&mut self, dir: &std::path::Path) -> Result<(), WriteError> {
        while self.stack.last().is_some_and(|f| f.path != dir) {
            if self.stack.len() == 1 {
                return Err(WriteError::Stopped(format!(
                    "the walk left the root for {}",
                    dir.display()
                )));
            }
            self.close_top()?;
        }
        Ok(())
    }

    /// The parent snapshot's node named `name` in the innermost folder.
    pub(crate) fn parent_node(&self, name: &str) -> Option<&Node> {
        self.stack.last()?.parent.get(name)
    }

    /// Adds an entry to the innermost folder; a folder is opened (its
    /// entries follow).
    pub(crate) fn push(&mut self, path: PathBuf, slot: Slot) {
        let is_dir = slot.node.is_dir();
        let parent_id = if is_dir {
            self.parent_node(&slot.node.name)
                .filter(|n| n.is_dir())
                .and_then(|n| n.subtree)
                .map(|t| id_bytes(&t.into_inner()))
        } else {
            None
        };
        if let Some(top) = self.stack.last_mut() {
            top.slots.push(slot);
        }
        if is_dir {
            let parent = self.parent_tree(parent_id);
            self.stack.push(Frame {
                path,
                slots: Vec::new(),
                parent,
                parent_id,
            });
        }
    }

    /// Closes every folder; returns the root tree's id and the tree packs.
    pub(crate) fn finish(mut self) -> Result<(Hash, Vec<WrittenPack>), WriteError> {
        while self.stack.len() > 1 {
            self.close_top()?;
        }
        let root = self
            .stack
            .pop()
            .ok_or_else(|| WriteError::Stopped("no root folder".into()))?;
        let id = self.store_tree(root)?;
        if !self.pack.is_empty() {
            let pack = std::mem::take(&mut self.pack);
            self.written.push(self.store.flush(pack)?);
        }
        Ok((id, self.written))
    }

    fn close_top(&mut self) -> Result<(), WriteError> {
        let frame = self.stack.pop().expect("a folder to close");
        let id = self.store_tree(frame)?;
        let top = self.stack.last_mut().expect("the closed folder's parent");
        if let Some(s) = top.slots.last_mut() {
            s.node.subtree = Some(TreeId::from(Id::new(id)));
        }
        Ok(())
    }

    /// Serialises and stores one folder's tree; returns its id.
    fn store_tree(&mut self, frame: Frame) -> Result<Hash, WriteError> {
        let mut nodes = Vec::with_capacity(frame.slots.len());
        for s in frame.slots {
            let mut node = s.node;
            if !s.chunks.is_empty() || node.content.is_none() && node.is_file() {
                let ids: Result<Vec<DataId>, WriteError> = s
                    .chunks
                    .into_iter()
                    .map(|c| c.wait().map(|h| DataId::from(Id::new(h))))
                    .collect();
                node.content = Some(ids?);
            }
            nodes.push(node);
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut json = serde_json::to_vec(&Tree { nodes })
            .map_err(|e| WriteError::Stopped(format!("serialising a tree: {e}")))?;
        json.push(b'\n');
        let id = sha256(&json);
        match frame.parent_id {
            Some(p) if p == id => self.counts.dirs_unmodified += 1,
            Some(_) => self.counts.dirs_changed += 1,
            None => self.counts.dirs_new += 1,
        }
        let known = self
            .known
            .read()
            .map(|k| k.has(BlobKind::Tree, &id))
            .unwrap_or(false);
        if !known && self.seen.insert(id) {
            let blob = self.store.seal_blob(id, BlobKind::Tree, &json)?;
            self.counts.blobs += 1;
            self.counts.bytes += json.len() as u64;
            self.counts.stored += blob.sealed.len() as u64;
            self.pack.add(blob);
            if self.pack.len() >= TREE_PACK_SIZE {
                let pack = std::mem::take(&mut self.pack);
                self.written.push(self.store.flush(pack)?);
            }
        }
        Ok(id)
    }

    /// The parent snapshot's tree `id`, by name (empty if there is none or
    /// it cannot be read: its files are then read again).
    fn parent_tree(&mut self, id: Option<Hash>) -> HashMap<String, Node> {
        let Some(id) = id else {
            return HashMap::new();
        };
        let at = self.known.read().ok().and_then(|k| k.tree(&id));
        let Some(at) = at else {
            return HashMap::new();
        };
        let tree = self
            .store
            .read_blob(&at.pack, at.offset, at.length, at.raw_len, &id)
            .and_then(|b| {
                serde_json::from_slice::<Tree>(&b)
                    .map_err(|e| WriteError::Damaged(format!("parent tree: {e}")))
            });
        match tree {
            Ok(t) => t.nodes.into_iter().map(|n| (n.name.clone(), n)).collect(),
            Err(e) => {
                self.warnings.push(format!(
                    "the parent snapshot's tree {} could not be read ({e}); its files were read again",
                    super::store::hex(&id)
                ));
                HashMap::new()
            }
        }
    }
}

/// Whether `new` is the parent's `old` unchanged (restic's test: same
/// size, modification and change times and inode) with every blob of its
/// content still in the repository.
pub(crate) fn unchanged(new: &Node, old: &Node, known: &Known) -> bool {
    matches!(new.node_type, NodeType::File)
        && matches!(old.node_type, NodeType::File)
        && new.meta.size == old.meta.size
        && new.meta.mtime == old.meta.mtime
        && new.meta.ctime == old.meta.ctime
        && new.meta.inode == old.meta.inode
        && old
            .content
            .as_ref()
            .is_some_and(|c| c.iter().all(|id| known.has(BlobKind::Data, &id_bytes(id))))
}
