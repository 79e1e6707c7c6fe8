//! What changed between two read-only btrfs snapshots, read from the
//! stream of `btrfs send --no-data -p BASE NEW` (DESIGN.md §7): per entry
//! of NEW, the byte ranges written, a truncation, metadata changes, and
//! whether it was made, renamed or (un)linked by the stream. Parsing is a
//! pure function of the bytes: `wire` reads the commands (every CRC
//! checked), `changes` replays them over the tree's names.
//!
//! Why the stream and not the ioctls: `btrfs send` is the kernel's own
//! comparison of two trees (extent items, inode items, references), the
//! format is stable and versioned, and with `--no-data` it is small
//! (metadata only). Reading it needs no `unsafe`; the tests hold streams
//! captured from the real command.

mod changes;
mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a stream was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// It does not start with `btrfs-stream`.
    #[error("not a btrfs send stream (no `btrfs-stream` header)")]
    NotAStream,
    /// A version this parser does not read.
    #[error("btrfs send stream version {0}, freezeframe reads versions 1 to 3")]
    Version(u32),
    /// It ends inside a command.
    #[error("the send stream ends inside the command at byte {offset}")]
    Truncated {
        /// Where the command starts.
        offset: usize,
    },
    /// A command's checksum is wrong.
    #[error("the send stream's command {command} at byte {offset} fails its CRC")]
    Crc {
        /// Where the command starts.
        offset: usize,
        /// Its number.
        command: u16,
    },
    /// No `END` command.
    #[error("the send stream has no END command")]
    NoEnd,
    /// Bytes after the `END` command.
    #[error("the send stream goes on after its END command (byte {offset})")]
    AfterEnd {
        /// Where the extra bytes start.
        offset: usize,
    },
    /// It is a full stream (no parent).
    #[error("the send stream is not incremental (it does not start with SNAPSHOT)")]
    NotIncremental,
    /// A command this parser does not know.
    #[error(
        "the send stream has command {command} at byte {offset}, which freezeframe does not know"
    )]
    UnknownCommand {
        /// Its number.
        command: u16,
        /// Where it starts.
        offset: usize,
    },
    /// A command lacks an attribute it needs.
    #[error("the send stream's command {command} at byte {offset} has no attribute {attribute}")]
    MissingAttribute {
        /// The command's number.
        command: u16,
        /// The attribute's number.
        attribute: u16,
        /// Where the command starts.
        offset: usize,
    },
    /// An attribute's value has the wrong size or form (a path leaving
    /// the subvolume, say).
    #[error("the send stream's command {command} at byte {offset} has a malformed attribute {attribute}")]
    BadAttribute {
        /// The command's number.
        command: u16,
        /// The attribute's number.
        attribute: u16,
        /// Where the command starts.
        offset: usize,
    },
}

/// What happened to one entry of the new snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileChange {
    /// Its path in the base; `None`: the stream made it.
    pub origin: Option<PathBuf>,
    /// Byte ranges written, holes punched or cloned into, as sorted,
    /// merged `[start, end)` pairs.
    pub ranges: Vec<(u64, u64)>,
    /// The size it was truncated (or extended) to.
    pub truncated: Option<u64>,
    /// Mode, owner, times, xattrs or attributes changed.
    pub metadata: bool,
    /// Renamed (itself or with a folder above it moved: see `origin`).
    pub renamed: bool,
    /// It gained or lost a hard link.
    pub linked: bool,
}

impl FileChange {
    /// Adds `[start, end)` to the ranges, merged with those it touches.
    pub fn add_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        self.ranges.retain(|&(a, b)| {
            let touches = a <= e && s <= b;
            if touches {
                s = s.min(a);
                e = e.max(b);
            }
            !touches
        });
        let at = self.ranges.partition_point(|&(a, _)| a < s);
        self.ranges.insert(at, (s, e));
    }

    /// Whether the ranges describe this entry's content at `path` against
    /// the base's entry at the same path: it was there before, under this
    /// name, and no link was added or removed.
    pub fn in_place(&self, path: &Path) -> bool {
        self.origin.as_deref() == Some(path) && !self.linked
    }

    /// Bytes in the ranges.
    pub fn range_bytes(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }
}

/// The changes from a base snapshot to a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendChanges {
    /// The new snapshot's subvolume UUID.
    pub uuid: [u8; 16],
    /// Its transaction id.
    pub ctransid: u64,
    /// The base's subvolume UUID.
    pub base_uuid: [u8; 16],
    /// The base's transaction id.
    pub base_ctransid: u64,
    /// Every entry the stream touched, under its path in the new snapshot
    /// (relative to the subvolume's root). An entry not listed is, for
    /// the kernel, unchanged and at the same path.
    pub entries: BTreeMap<PathBuf, FileChange>,
}

/// A subvolume UUID as `btrfs subvolume show` prints it
/// (`8-4-4-4-12` lower-case hex).
pub fn uuid_text(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Reads an incremental stream of `btrfs send --no-data -p BASE NEW`.
/// Anything not exactly such a stream, whole and intact, is an error.
pub fn parse(stream: &[u8]) -> Result<SendChanges, StreamError> {
    let (_, cmds) = wire::commands(stream)?;
    changes::replay(&cmds)
}

#[cfg(test)]
mod tests;
