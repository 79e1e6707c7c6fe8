//! Which changed files are cut only around the kernel's changed ranges,
//! and why the others are read whole (DESIGN.md §7: trust, but check).
//! A file takes the extent path only when everything agrees: the kernel
//! lists it at the same path as in the base, no hard link is involved,
//! its size is the one the stream implies, and the parent snapshot's blob
//! list of it is whole (every blob indexed, lengths adding up to its
//! size). Anything else is a full read, counted by reason.

use std::collections::BTreeMap;
use std::path::Path;

use rustic_core::repofile::Node;

use super::index::Known;
use super::readers::Around;
use super::resync::ParentChunk;
use super::store::id_bytes;
use crate::sys::shown::escape_path;
use crate::target::ChangedFiles;

/// Why a changed file was read whole although the kernel's ranges were
/// at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fallback {
    /// The kernel did not list it, yet it differs from the parent's.
    NotListed,
    /// It was made, renamed or moved with its folder.
    Moved,
    /// It has (or had) more than one hard link.
    HardLinks,
    /// Its size is not the one the stream implies.
    Size,
    /// The parent's blob list of it is not whole.
    ParentBlobs,
}

impl Fallback {
    /// The reason, as the report says it.
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::NotListed => "not in the kernel's list of changes",
            Self::Moved => "new, renamed or moved since the base",
            Self::HardLinks => "hard links",
            Self::Size => "size differs from the stream's",
            Self::ParentBlobs => "parent blob list incomplete",
        }
    }
}

/// What the extent path did in one backup.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExtentCounts {
    /// Files cut around their changed ranges.
    pub files: u64,
    /// Bytes in those files' changed ranges.
    pub changed_bytes: u64,
    /// Changed files read whole instead, by reason.
    pub fallbacks: BTreeMap<&'static str, u64>,
    /// A few of them, with their reason (for the report).
    pub examples: Vec<String>,
}

/// Example files kept per backup.
const EXAMPLES: usize = 20;

impl ExtentCounts {
    /// Counts a file cut around its changes.
    pub(crate) fn taken(&mut self, changed_bytes: u64) {
        self.files += 1;
        self.changed_bytes += changed_bytes;
    }

    /// Counts a file read whole, and why.
    pub(crate) fn fell_back(&mut self, why: Fallback, rel: &Path) {
        *self.fallbacks.entry(why.text()).or_default() += 1;
        if self.examples.len() < EXAMPLES {
            self.examples
                .push(format!("{}: {}", escape_path(rel), why.text()));
        }
    }
}

/// How to cut the file at `rel` (now `node`, in the parent `old`) around
/// the changes the kernel named, with the bytes in its changed ranges; or
/// why not.
pub(crate) fn plan(
    changes: &ChangedFiles,
    rel: &Path,
    node: &Node,
    old: &Node,
    known: &Known,
) -> Result<(Around, u64), Fallback> {
    // A file of several names has its changes under one of them.
    if node.meta.links > 1 || old.meta.links > 1 {
        return Err(Fallback::HardLinks);
    }
    let change = changes.get(rel).ok_or(Fallback::NotListed)?;
    if !change.in_place(rel) || !node.is_file() || !old.is_file() {
        return Err(Fallback::Moved);
    }
    let (size, base) = (node.meta.size, old.meta.size);
    let written_to = change.ranges.last().map_or(0, |r| r.1);
    if change.truncated.unwrap_or(base.max(written_to)) != size {
        return Err(Fallback::Size);
    }
    let parent: Option<Vec<ParentChunk>> = old
        .content
        .as_ref()
        .ok_or(Fallback::ParentBlobs)?
        .iter()
        .map(|id| {
            let id = id_bytes(id);
            known.data_len(&id).map(|len| ParentChunk {
                id,
                len: u64::from(len),
            })
        })
        .collect();
    let parent = parent.ok_or(Fallback::ParentBlobs)?;
    if parent.iter().map(|c| c.len).sum::<u64>() != base {
        return Err(Fallback::ParentBlobs);
    }
    let around = Around {
        len: size,
        parent,
        changed: change.ranges.clone(),
    };
    Ok((around, change.range_bytes()))
}
