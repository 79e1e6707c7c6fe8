//! Folders, bottom-up: the walk comes in path order, so the folders open
//! form a stack; a folder is closed when the walk leaves it and handed to
//! the tree builder, a thread of its own, so the walk goes on cutting
//! while the chunks of the closed folder's files are still being stored.
//! The builder takes closed folders in order (children before parents),
//! waits for their files' chunk ids, serialises restic's tree JSON (nodes
//! by name, a newline at the end) and stores it unless the repository has
//! it. Beside each open folder lies the parent snapshot's tree of the same
//! path, where unchanged files find their blob lists.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use rustic_core::repofile::{Node, NodeType, Tree};
use rustic_core::{DataId, Id, TreeId};

use super::chunks::PendingId;
use super::index::Known;
use super::pack::{sha256, BlobKind, Hash, PackBuilder, WrittenPack};
use super::readers::PendingFile;
use super::store::{id_bytes, Store};
use super::WriteError;

/// A tree pack is written once it holds this much.
const TREE_PACK_SIZE: usize = 4 << 20;
/// Closed folders waiting for the builder.
const CLOSED_AHEAD: usize = 256;

/// A tree id to come from the builder.
type PendingTree = Receiver<Result<Hash, WriteError>>;

/// One entry of an open folder.
pub(crate) struct Slot {
    /// Its node (content and subtree filled in when known).
    pub node: Node,
    /// A file's chunks, in order, when it was read.
    pub chunks: Vec<PendingId>,
    /// A folder's tree, once the builder has it.
    subtree: Option<PendingTree>,
    /// A file being read: its chunks, once its reader has cut it; and
    /// whether it was counted as new (else changed).
    file: Option<(PendingFile, bool)>,
}

impl Slot {
    /// An entry with nothing to read (a folder, a symlink, a file whose
    /// content is known).
    pub(crate) fn bare(node: Node) -> Self {
        Self {
            node,
            chunks: Vec::new(),
            subtree: None,
            file: None,
        }
    }

    /// A file being read (counted as new, or as changed).
    pub(crate) fn reading(node: Node, file: PendingFile, new: bool) -> Self {
        Self {
            node,
            chunks: Vec::new(),
            subtree: None,
            file: Some((file, new)),
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
    /// Where the builder answers with this folder's tree id.
    done: Sender<Result<Hash, WriteError>>,
}

/// A folder left by the walk, for the builder.
struct Closed {
    slots: Vec<Slot>,
    parent_id: Option<Hash>,
    done: Sender<Result<Hash, WriteError>>,
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
    /// Files counted as new that could not be read to the end (left out).
    pub unread_new: u64,
    /// Files counted as changed that could not be read to the end.
    pub unread_changed: u64,
}

/// What the builder hands back: the tree packs and the counts.
type Built = Result<(Vec<WrittenPack>, TreeCounts), WriteError>;

/// The stack of open folders, on the walk's thread.
pub(crate) struct Trees<'s> {
    store: &'s Store,
    known: Arc<RwLock<Known>>,
    stack: Vec<Frame>,
    closed: Option<Sender<Closed>>,
    builder: Option<JoinHandle<Built>>,
    root: PendingTree,
    /// Parent trees that could not be read (their files are read again).
    pub warnings: Vec<String>,
}

impl<'s> Trees<'s> {
    /// Opens the root folder `root`, beside the parent snapshot's root
    /// tree, and starts the builder.
    pub(crate) fn new(
        store: &'s Store,
        known: Arc<RwLock<Known>>,
        root: PathBuf,
        parent_root: Option<Hash>,
    ) -> Self {
        let (closed, inbox) = bounded::<Closed>(CLOSED_AHEAD);
        let builder = {
            let mut b = Builder {
                store: store.clone(),
                known: known.clone(),
                pack: PackBuilder::default(),
                written: Vec::new(),
                seen: HashSet::new(),
                counts: TreeCounts::default(),
            };
            std::thread::spawn(move || b.run(&inbox))
        };
        let (done, root_id) = bounded(1);
        let mut t = Self {
            store,
            known,
            stack: Vec::new(),
            closed: Some(closed),
            builder: Some(builder),
            root: root_id,
            warnings: Vec::new(),
        };
        let parent = t.parent_tree(parent_root);
        t.stack.push(Frame {
            path: root,
            slots: Vec::new(),
            parent,
            parent_id: parent_root,
            done,
        });
        t
    }

    /// Closes folders until `dir` is the innermost open one.
    pub(crate) fn enter(&mut self, dir: &std::path::Path) -> Result<(), WriteError> {
        while self.stack.last().is_some_and(|f| f.path != dir) {
            if self.stack.len() == 1 {
                return Err(WriteError::Stopped(format!(
                    "the walk left the root for {}",
                    crate::sys::shown::escape_path(dir)
                )));
            }
            self.close_top();
        }
        Ok(())
    }

    /// The parent snapshot's node named `name` in the innermost folder.
    pub(crate) fn parent_node(&self, name: &str) -> Option<&Node> {
        self.stack.last()?.parent.get(name)
    }

    /// Adds an entry to the innermost folder; a folder is opened (its
    /// entries follow).
    pub(crate) fn push(&mut self, path: PathBuf, mut slot: Slot) {
        if !slot.node.is_dir() {
            if let Some(top) = self.stack.last_mut() {
                top.slots.push(slot);
            }
            return;
        }
        let parent_id = self
            .parent_node(&slot.node.name)
            .filter(|n| n.is_dir())
            .and_then(|n| n.subtree)
            .map(|t| id_bytes(&t.into_inner()));
        let (done, subtree) = bounded(1);
        slot.subtree = Some(subtree);
        if let Some(top) = self.stack.last_mut() {
            top.slots.push(slot);
        }
        let parent = self.parent_tree(parent_id);
        self.stack.push(Frame {
            path,
            slots: Vec::new(),
            parent,
            parent_id,
            done,
        });
    }

    /// Closes every folder and waits for the builder; returns the root
    /// tree's id, the tree packs and the counts.
    pub(crate) fn finish(mut self) -> Result<(Hash, Vec<WrittenPack>, TreeCounts), WriteError> {
        while !self.stack.is_empty() {
            self.close_top();
        }
        self.closed = None;
        let built = match self.builder.take().map(JoinHandle::join) {
            Some(Ok(b)) => b,
            _ => Err(WriteError::Stopped("the tree builder panicked".into())),
        };
        let (packs, counts) = built?;
        let root = self
            .root
            .recv()
            .unwrap_or_else(|_| Err(WriteError::Stopped("no root tree".into())))?;
        Ok((root, packs, counts))
    }

    /// Hands the innermost folder to the builder (if the builder stopped,
    /// `finish` says why).
    fn close_top(&mut self) {
        let Some(f) = self.stack.pop() else { return };
        if let Some(c) = &self.closed {
            let _ = c.send(Closed {
                slots: f.slots,
                parent_id: f.parent_id,
                done: f.done,
            });
        }
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

impl Drop for Trees<'_> {
    fn drop(&mut self) {
        // An error left the walk: stop the builder before returning.
        self.stack.clear();
        self.closed = None;
        if let Some(b) = self.builder.take() {
            let _ = b.join();
        }
    }
}

/// The tree builder's state, on its own thread.
struct Builder {
    store: Store,
    known: Arc<RwLock<Known>>,
    pack: PackBuilder,
    written: Vec<WrittenPack>,
    seen: HashSet<Hash>,
    counts: TreeCounts,
}

impl Builder {
    /// Builds every closed folder in order; then writes the last pack.
    fn run(&mut self, inbox: &Receiver<Closed>) -> Built {
        for c in inbox {
            match self.store_tree(c.slots, c.parent_id) {
                Ok(id) => {
                    let _ = c.done.send(Ok(id));
                }
                Err(e) => {
                    let _ = c
                        .done
                        .send(Err(WriteError::Stopped("a folder above failed".into())));
                    return Err(e);
                }
            }
        }
        if !self.pack.is_empty() {
            let pack = std::mem::take(&mut self.pack);
            self.written.push(self.store.flush(pack)?);
        }
        Ok((std::mem::take(&mut self.written), self.counts))
    }

    /// Serialises and stores one folder's tree; returns its id.
    fn store_tree(
        &mut self,
        slots: Vec<Slot>,
        parent_id: Option<Hash>,
    ) -> Result<Hash, WriteError> {
        let mut nodes = Vec::with_capacity(slots.len());
        for mut s in slots {
            if let Some((file, new)) = s.file.take() {
                match file.recv() {
                    Ok(Ok(chunks)) => s.chunks = chunks,
                    // Not read to the end: left out of the tree.
                    _ => {
                        if new {
                            self.counts.unread_new += 1;
                        } else {
                            self.counts.unread_changed += 1;
                        }
                        continue;
                    }
                }
            }
            let mut node = s.node;
            if let Some(sub) = s.subtree {
                let id = sub
                    .recv()
                    .unwrap_or_else(|_| Err(WriteError::Stopped("a subfolder was lost".into())))?;
                node.subtree = Some(TreeId::from(Id::new(id)));
            }
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
        match parent_id {
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
