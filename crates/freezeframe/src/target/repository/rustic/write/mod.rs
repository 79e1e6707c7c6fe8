//! freezeframe's own writer of restic-format snapshots (DESIGN.md §6):
//! the walk of the snapshot mount, compared with the parent snapshot's
//! trees; changed and new files cut with FastCDC (restic's bounds) and
//! hashed, compressed and sealed on every core (`chunks`); folders stored
//! bottom-up (`trees`); then the index files naming every pack written,
//! and only then (by the caller) the snapshot file. A crash at any instant
//! leaves at worst packs no snapshot refers to.

mod chunks;
mod cutter;
mod extents;
mod index;
mod lock;
mod pack;
mod readers;
mod resync;
mod seal;
mod store;
mod trees;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustic_core::{FileType, ReadSourceEntry, ReadSourceOpen, RusticResult};

use self::chunks::DataPipe;
pub(crate) use self::cutter::Bounds;
pub(crate) use self::extents::ExtentCounts;
pub(crate) use self::index::Known;
pub(crate) use self::lock::{
    check_lock_size, is_lock_name, lock, remove_stale_own, HeldLock, LocalLocks, LockDir,
};
use self::pack::{Hash, WrittenPack};
use self::readers::Readers;
pub(crate) use self::resync::ReadAt;
pub(crate) use self::store::{hex, id_bytes, Store};
use self::trees::{unchanged, Slot, Trees};
use crate::target::repository::RESERVED_DIR;
use crate::target::ChangedFiles;

/// Packs named per index file.
const PACKS_PER_INDEX: usize = 500;

/// Why writing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// Sealing or opening under the key failed.
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    /// The backend refused a read or write.
    #[error("{0}")]
    Backend(String),
    /// A repository file is damaged.
    #[error("{0}")]
    Damaged(String),
    /// Another process holds a lock in the way (named).
    #[error("{0}")]
    Locked(String),
    /// A stage of the writer stopped.
    #[error("{0}")]
    Stopped(String),
}

/// Counts of one tree written.
#[derive(Debug, Default, Clone)]
pub(crate) struct Wrote {
    /// The root tree's id.
    pub tree: Hash,
    /// Files new / changed / unchanged against the parent snapshot.
    pub files_new: u64,
    /// Files changed since the parent snapshot.
    pub files_changed: u64,
    /// Files whose blob lists were taken from the parent snapshot.
    pub files_unchanged: u64,
    /// Folders in the tree.
    pub dirs: u64,
    /// Bytes of all files in the tree.
    pub bytes_total: u64,
    /// Folder counts and tree blobs added.
    pub trees: trees::TreeCounts,
    /// Data blobs added.
    pub data_blobs: u64,
    /// Their plain and stored bytes.
    pub data_bytes: u64,
    /// Their stored bytes.
    pub data_stored: u64,
    /// Changed files cut around the kernel's changed ranges, and those
    /// read whole instead.
    pub extents: ExtentCounts,
    /// What the writer noticed that the operator should know.
    pub warnings: Vec<String>,
}

/// The source: walked entries in path order, below `root`.
pub(crate) struct Source<'a, O, I>
where
    O: ReadSourceOpen,
    I: Iterator<Item = RusticResult<ReadSourceEntry<O>>>,
{
    /// The folder the entries are below.
    pub root: &'a Path,
    /// The entries.
    pub entries: I,
    /// Threads that hash, compress and seal.
    pub workers: usize,
    /// How files are cut into chunks.
    pub bounds: Bounds,
    /// Whether the run was stopped: nothing more is written.
    pub stopped: &'a dyn Fn() -> bool,
    /// The kernel's changes since the base the parent snapshot was taken
    /// from, when that pairing is certain.
    pub hints: Option<&'a ChangedFiles>,
}

/// Writes the tree of `src` and every blob it needs, then the index files
/// naming the packs; the caller writes the snapshot file after. Files that
/// cannot be opened or read are left out (the source records them).
pub(crate) fn write_tree<O, I>(
    store: &Store,
    known: &Arc<RwLock<Known>>,
    src: Source<'_, O, I>,
    parent_root: Option<Hash>,
) -> Result<Wrote, WriteError>
where
    O: ReadSourceOpen,
    O::Reader: ReadAt + Send + 'static,
    I: Iterator<Item = RusticResult<ReadSourceEntry<O>>>,
{
    let pipe = DataPipe::start(store, known, src.workers);
    let walk = Walk {
        root: src.root,
        known,
        hints: src.hints,
    };
    let mut trees = Trees::new(store, known.clone(), src.root.to_owned(), parent_root);
    let readers = Readers::start(&pipe.submitter(), src.bounds);
    let mut w = Wrote::default();
    for entry in src.entries {
        // A pack that cannot be written (a full disk, a refused upload)
        // ends the backup: nothing more is read.
        if pipe.broken() {
            break;
        }
        // A walk error is recorded by the source; the rest is backed up.
        let Ok(entry) = entry else { continue };
        walk.add(&readers, &mut trees, entry, &mut w)?;
    }
    readers.finish();
    if (src.stopped)() {
        drop(trees);
        pipe.abort();
        return Err(WriteError::Stopped("the run was stopped".into()));
    }
    w.warnings.extend(trees.warnings.iter().cloned());
    let built = trees.finish();
    let data = pipe_finish(pipe, &mut w);
    let ((tree, tree_packs, counts), mut packs) = match (built, data) {
        (Ok(b), Ok(p)) => (b, p),
        // The data side's own error (a full disk, say) says more than the
        // trees' "the pack writer stopped".
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
    };
    w.files_new -= counts.unread_new;
    w.files_changed -= counts.unread_changed;
    w.trees = counts;
    packs.extend(tree_packs);
    w.tree = tree;
    let mut files = Vec::new();
    for group in packs.chunks(PACKS_PER_INDEX) {
        files.push(store.write_json(FileType::Index, &index::index_json(group))?);
    }
    if let Ok(mut k) = known.write() {
        k.add(&packs, &files);
    }
    Ok(w)
}

fn pipe_finish(pipe: DataPipe, w: &mut Wrote) -> Result<Vec<WrittenPack>, WriteError> {
    let added = pipe.added.clone();
    let packs = pipe.finish()?;
    use std::sync::atomic::Ordering::Relaxed;
    w.data_blobs = added.blobs.load(Relaxed);
    w.data_bytes = added.bytes.load(Relaxed);
    w.data_stored = added.stored.load(Relaxed);
    Ok(packs)
}

/// What every walked entry is added with.
struct Walk<'a> {
    root: &'a Path,
    known: &'a RwLock<Known>,
    hints: Option<&'a ChangedFiles>,
}

impl Walk<'_> {
    /// One walked entry into its folder; a file's content read unless the
    /// parent snapshot has it unchanged, and only around its changes when the
    /// kernel's ranges for it can be trusted.
    fn add<O: ReadSourceOpen>(
        &self,
        readers: &Readers,
        trees: &mut Trees<'_>,
        entry: ReadSourceEntry<O>,
        w: &mut Wrote,
    ) -> Result<(), WriteError>
    where
        O::Reader: ReadAt + Send + 'static,
    {
        let known = self.known;
        let ReadSourceEntry {
            path,
            mut node,
            open,
        } = entry;
        let dir: PathBuf = path.parent().map(Path::to_owned).unwrap_or_default();
        trees.enter(&dir)?;
        if node.is_dir() {
            w.dirs += 1;
            trees.push(path, Slot::bare(node));
            return Ok(());
        }
        let Some(open) = open.filter(|_| node.is_file()) else {
            trees.push(path, Slot::bare(node));
            return Ok(());
        };
        w.bytes_total += node.meta.size;
        let old = trees.parent_node(&node.name).cloned();
        if let Some(old) = &old {
            let same = known
                .read()
                .map(|k| unchanged(&node, old, &k))
                .unwrap_or(false);
            if same {
                w.files_unchanged += 1;
                node.content = old.content.clone();
                trees.push(path, Slot::bare(node));
                return Ok(());
            }
        }
        let rel = path.strip_prefix(self.root).unwrap_or(&path);
        let around = match (self.hints, &old) {
            // The config and dump beside the tree are not on the volume:
            // no kernel lists them, and they are read whole, unremarked.
            _ if rel.starts_with(RESERVED_DIR) => None,
            (Some(h), Some(old)) => {
                let k = known
                    .read()
                    .map_err(|_| WriteError::Stopped("the index lock was poisoned".into()))?;
                let plan = extents::plan(h, rel, &node, old, &k);
                plan.map_err(|why| w.extents.fell_back(why, rel)).ok()
            }
            _ => None,
        };
        // Opening or reading fails: the file is left out (the source has
        // recorded it); chunks already handed on are stored, unreferenced.
        let Ok(reader) = open.open() else {
            return Ok(());
        };
        let new = old.is_none();
        if new {
            w.files_new += 1;
        } else {
            w.files_changed += 1;
        }
        let file = match around {
            Some((a, changed)) => {
                w.extents.taken(changed);
                readers.read_around(Box::new(reader), a)
            }
            None => readers.read(Box::new(reader)),
        };
        trees.push(path, Slot::reading(node, file, new));
        Ok(())
    }
}
