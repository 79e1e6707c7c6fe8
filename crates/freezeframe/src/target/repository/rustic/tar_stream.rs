//! A snapshot's tree written out as a pax tar stream, for our own safe
//! extractor to read. rustic_core's restore keeps every decoded blob in
//! memory and panics on a write error; streaming file contents blob by blob
//! into a pipe keeps memory bounded and turns a full disk into an error.
//!
//! Owners are numeric (no user or group names), as restic records them.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use rustic_core::repofile::{BlobType, IndexFile, Node, NodeType};
use rustic_core::{BlobId, IndexedFull, Repository, TreeId};

use crate::sys::shown::escape;
use crate::sys::time::Timestamp;
use crate::sys::Cancel;
use crate::target::browse::BrowsePath;
use crate::target::repository::gomode::posix_mode;
use crate::target::repository::RESERVED_DIR;

/// Longest name the ustar `name` field holds.
const NAME_LEN: usize = 100;
/// Largest size (and id) an octal ustar field holds.
const MAX_OCTAL: u64 = 0o77777777777;

/// What the stream held.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct StreamStats {
    /// Entries written.
    pub entries: u64,
    /// File bytes written.
    pub bytes: u64,
    /// Sockets left out (tar cannot hold them).
    pub sockets: u64,
}

/// Why the stream stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    /// Writing to the consumer failed (it stopped reading: see its error).
    #[error("writing the restore stream: {0}")]
    Write(#[from] io::Error),
    /// The repository could not be read, or holds something impossible.
    #[error("{0}")]
    Repository(String),
}

/// Linux `dev_t` → (major, minor).
pub(super) fn split_dev(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// A name from a tree, refused if it could step out of its folder.
fn checked_name(node: &Node) -> Result<Vec<u8>, StreamError> {
    let name = node.name().as_bytes().to_vec();
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(StreamError::Repository(format!(
            "the snapshot holds an impossible file name `{}`; the repository is damaged or hostile (run `freezeframe verify`)",
            escape(&name)
        )));
    }
    Ok(name)
}

struct Writer<'r, S, W: Write> {
    repo: &'r Repository<S>,
    out: tar::Builder<W>,
    stats: StreamStats,
    cancel: &'r Cancel,
    /// Only these paths and the folders on their way (empty: all).
    include: &'r [BrowsePath],
}

/// Counts what passes and refuses more than announced.
struct Exact<'w, W: Write> {
    inner: &'w mut W,
    left: u64,
    /// Writing to the consumer failed (it stopped reading).
    write_failed: Option<io::ErrorKind>,
}

impl<W: Write> Write for Exact<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file content longer than its recorded size",
            ));
        }
        let n = self
            .inner
            .write(buf)
            .inspect_err(|e| self.write_failed = Some(e.kind()))?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<S: IndexedFull, W: Write> Writer<'_, S, W> {
    /// Streams tree `id` at `prefix`; `filtered`: only what `include`
    /// selects below it.
    fn tree(
        &mut self,
        id: TreeId,
        prefix: &[u8],
        top: bool,
        filtered: bool,
    ) -> Result<(), StreamError> {
        let tree = self
            .repo
            .get_tree(&id)
            .map_err(|e| StreamError::Repository(format!("reading tree {id}: {e}")))?;
        for node in &tree.nodes {
            self.cancel.check()?;
            let name = checked_name(node)?;
            if top && name == RESERVED_DIR.as_bytes() {
                continue;
            }
            let mut path = prefix.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let below = if filtered {
                let p = BrowsePath::from_stored(&path);
                if self.include.iter().any(|i| p.is_within(i)) {
                    false
                } else if node.is_dir() && self.include.iter().any(|i| p.is_ancestor_of(i)) {
                    true
                } else {
                    continue;
                }
            } else {
                false
            };
            self.node(node, &path, below)?;
        }
        Ok(())
    }

    fn node(&mut self, node: &Node, path: &[u8], filtered: bool) -> Result<(), StreamError> {
        let mut h = tar::Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let meta = &node.meta;
        h.set_mode(posix_mode(meta.mode.unwrap_or(0o644)));
        let (uid, gid) = (
            u64::from(meta.uid.unwrap_or(0)),
            u64::from(meta.gid.unwrap_or(0)),
        );
        h.set_uid(uid.min(MAX_OCTAL));
        h.set_gid(gid.min(MAX_OCTAL));
        if uid > MAX_OCTAL {
            pax.push(("uid".into(), uid.to_string().into_bytes()));
        }
        if gid > MAX_OCTAL {
            pax.push(("gid".into(), gid.to_string().into_bytes()));
        }
        if let Some(t) = meta.mtime {
            // jiff gives a negative fraction before 1970 (-1 s, -0.5 s).
            let t = Timestamp::new(t.as_second(), i64::from(t.subsec_nanosecond()));
            h.set_mtime(u64::try_from(t.sec).unwrap_or(0));
            pax.push(("mtime".into(), t.to_pax().into_bytes()));
        }
        for x in &meta.extended_attributes {
            pax.push((
                format!("SCHILY.xattr.{}", x.name),
                x.value.clone().unwrap_or_default(),
            ));
        }
        h.set_size(0);
        let mut name = path.to_vec();
        match &node.node_type {
            NodeType::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                name.push(b'/');
            }
            NodeType::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(meta.size.min(MAX_OCTAL));
                if meta.size > MAX_OCTAL {
                    pax.push(("size".into(), meta.size.to_string().into_bytes()));
                }
            }
            NodeType::Symlink { .. } => {
                h.set_entry_type(tar::EntryType::Symlink);
                let target = node.node_type.to_link().as_os_str().as_bytes().to_vec();
                let field = &mut h.as_old_mut().linkname;
                if target.len() <= field.len() {
                    field[..target.len()].copy_from_slice(&target);
                } else {
                    pax.push(("linkpath".into(), target));
                }
            }
            NodeType::Dev { device } | NodeType::Chardev { device } => {
                let block = matches!(node.node_type, NodeType::Dev { .. });
                h.set_entry_type(if block {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Char
                });
                let (major, minor) = split_dev(*device);
                h.set_device_major(u32::try_from(major).unwrap_or(0))?;
                h.set_device_minor(u32::try_from(minor).unwrap_or(0))?;
            }
            NodeType::Fifo => h.set_entry_type(tar::EntryType::Fifo),
            NodeType::Socket => {
                self.stats.sockets += 1;
                return Ok(());
            }
        }
        if name.len() > NAME_LEN {
            pax.push(("path".into(), name.clone()));
        }
        let field = &mut h.as_old_mut().name;
        let n = name.len().min(NAME_LEN);
        field[..n].copy_from_slice(&name[..n]);
        h.set_cksum();
        self.out
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        // Header only: file data follows straight from the repository.
        self.out.append(&h, io::empty())?;
        self.stats.entries += 1;
        match &node.node_type {
            NodeType::File => self.content(node, path)?,
            NodeType::Dir => {
                let Some(sub) = node.subtree else {
                    return Err(StreamError::Repository(format!(
                        "folder {} has no subtree; the repository is damaged",
                        escape(path)
                    )));
                };
                self.tree(sub, path, false, filtered)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn content(&mut self, node: &Node, path: &[u8]) -> Result<(), StreamError> {
        let size = node.meta.size;
        let inner = self.out.get_mut();
        let mut exact = Exact {
            inner,
            left: size,
            write_failed: None,
        };
        if let Err(e) = self.repo.dump(node, &mut exact) {
            if let Some(kind) = exact.write_failed {
                // The consumer stopped: its error is the one to report.
                return Err(StreamError::Write(io::Error::new(
                    kind,
                    "the extractor stopped reading",
                )));
            }
            return Err(StreamError::Repository(damaged_content(
                self.repo,
                node,
                &escape(path),
                &e.to_string(),
            )));
        }
        if exact.left != 0 {
            return Err(StreamError::Repository(format!(
                "{} is {} bytes shorter than its recorded size; the repository is damaged",
                escape(path),
                exact.left
            )));
        }
        let pad = (512 - size % 512) % 512;
        inner_write_zeros(self.out.get_mut(), pad)?;
        self.stats.bytes += size;
        Ok(())
    }
}

/// What to say of a file whose content could not be read: which of its
/// blobs failed, and the pack that holds it (from the index files).
fn damaged_content<S: IndexedFull>(
    repo: &Repository<S>,
    node: &Node,
    path: &str,
    err: &str,
) -> String {
    let content = node.content.as_deref().unwrap_or(&[]);
    let failing = content.iter().enumerate().find_map(|(i, id)| {
        repo.get_blob_cached(&BlobId::from(**id), BlobType::Data)
            .err()
            .map(|e| (i, *id, e.to_string()))
    });
    let Some((i, id, why)) = failing else {
        return format!("reading {path}: {err}; the repository is damaged (run `freezeframe verify --read-data`)");
    };
    let pack = find_pack(repo, &BlobId::from(*id))
        .map(|p| format!("pack {p}"))
        .unwrap_or_else(|| "a pack no index names".into());
    format!(
        "reading {path}: its data blob {} of {} ({}) in {pack} cannot be read: {why}; the repository is damaged (run `freezeframe verify --read-data`)",
        i + 1,
        content.len(),
        &*id.to_hex()
    )
}

/// The pack the index files place blob `id` in.
fn find_pack<S: IndexedFull>(repo: &Repository<S>, id: &BlobId) -> Option<String> {
    repo.stream_files::<IndexFile>().ok()?.find_map(|r| {
        let (_, index) = r.ok()?;
        index
            .packs
            .iter()
            .find(|p| p.blobs.iter().any(|b| b.id == *id))
            .map(|p| p.id.to_hex().to_string())
    })
}

fn inner_write_zeros(w: &mut impl Write, n: u64) -> io::Result<()> {
    const ZEROS: [u8; 512] = [0; 512];
    w.write_all(&ZEROS[..usize::try_from(n).unwrap_or(0)])
}

/// Writes the tree `root` (without the reserved folder) as a tar stream:
/// all of it, or only the `include` paths and the folders on their way
/// (the blobs of nothing else are read).
pub(super) fn write_tree<S: IndexedFull>(
    repo: &Repository<S>,
    root: TreeId,
    out: impl Write,
    cancel: &Cancel,
    include: &[BrowsePath],
) -> Result<StreamStats, StreamError> {
    let mut w = Writer {
        repo,
        out: tar::Builder::new(out),
        stats: StreamStats::default(),
        cancel,
        include,
    };
    w.tree(root, b"", true, !include.is_empty())?;
    w.out.finish()?;
    Ok(w.stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers() {
        // makedev(8, 1) and makedev(259, 70000)
        assert_eq!(split_dev(0x801), (8, 1));
        let (ma, mi) = (259u64, 70000u64);
        let dev = ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12);
        assert_eq!(split_dev(dev), (ma, mi));
    }
}
