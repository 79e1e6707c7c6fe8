//! A tar archive as a [`BackupView`]: one pass over the archive builds the
//! tree (every entry's metadata and where its data lies in the decoded
//! stream) and notes the compression's member starts; a file is then read
//! through [`SeekableArchive`], decoding from the member start before it.
//! Entries whose path could not be a file's (`..`, NUL) are left out and
//! counted; a later entry of the same path replaces an earlier one, as
//! GNU tar's extraction does.

use std::collections::HashMap;
use std::fs::File;
use std::io;

use tar::EntryType;

use super::browse::kind_of;
use crate::archive::read::{for_each, Flow, Resolved};
use crate::archive::seekable::SeekableArchive;
use crate::archive::sparse::{check_segments, decode_map, Segment};
use crate::archive::walk::Kind;
use crate::config::Compression;
use crate::target::browse::{escape, BrowsePath};
use crate::target::view::{is_file_name, BackupView, NodeRef, ViewEntry};
use crate::target::TargetError;

/// Where a file's bytes are in the decoded stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    None,
    Plain {
        at: u64,
    },
    /// Segments of the file with the stream offset of each one's bytes.
    Sparse {
        segments: Vec<(Segment, u64)>,
    },
}

#[derive(Debug)]
struct Node {
    entry: ViewEntry,
    children: Vec<(Vec<u8>, usize)>,
    data: Data,
}

/// A tar archive, indexed.
pub struct TarView {
    archive: SeekableArchive,
    nodes: Vec<Node>,
    /// Entries left out (their stored paths, escaped).
    skipped: Vec<String>,
}

fn dir_entry(name: Vec<u8>, node: usize) -> ViewEntry {
    ViewEntry {
        name,
        node: NodeRef(node as u64),
        kind: Kind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime_ns: 0,
        link: None,
        device: None,
        links: 1,
        xattrs: Vec::new(),
    }
}

/// The index while the archive is read.
struct Builder {
    nodes: Vec<Node>,
    /// (folder, name) → node, for finding parents and hardlink targets.
    names: HashMap<(usize, Vec<u8>), usize>,
    skipped: Vec<String>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            nodes: vec![Node {
                entry: dir_entry(Vec::new(), 0),
                children: Vec::new(),
                data: Data::None,
            }],
            names: HashMap::new(),
            skipped: Vec::new(),
        }
    }

    /// The folder at `comps`, made (with default metadata) where the
    /// archive has no entry of its own for it; `None` if a non-folder is
    /// on the way.
    fn folder(&mut self, comps: &[Vec<u8>]) -> Option<usize> {
        let mut at = 0;
        for c in comps {
            at = match self.names.get(&(at, c.clone())) {
                Some(&i) if self.nodes[i].entry.kind == Kind::Dir => i,
                Some(_) => return None,
                None => self.add(at, c.clone(), dir_entry(c.clone(), 0), Data::None),
            };
        }
        Some(at)
    }

    fn add(&mut self, parent: usize, name: Vec<u8>, mut entry: ViewEntry, data: Data) -> usize {
        let i = self.nodes.len();
        entry.node = NodeRef(i as u64);
        self.nodes.push(Node {
            entry,
            children: Vec::new(),
            data,
        });
        self.link(parent, name, i);
        i
    }

    /// Names `node` `name` in `parent`, replacing an earlier entry of
    /// that name.
    fn link(&mut self, parent: usize, name: Vec<u8>, node: usize) {
        if let Some(old) = self.names.insert((parent, name.clone()), node) {
            self.nodes[parent].children.retain(|(n, _)| *n != name);
            let e = &mut self.nodes[old].entry;
            e.links = e.links.saturating_sub(1);
        }
        self.nodes[parent].children.push((name, node));
    }

    fn find(&self, comps: &[Vec<u8>]) -> Option<usize> {
        comps
            .iter()
            .try_fold(0, |at, c| self.names.get(&(at, c.clone())).copied())
    }

    fn entry<R: io::Read>(&mut self, e: &mut Resolved<'_, '_, R>) -> io::Result<()> {
        let path = BrowsePath::from_stored(&e.path);
        let comps = path.components();
        if comps.iter().any(|c| !is_file_name(c)) {
            self.skipped.push(escape(&e.path));
            return Ok(());
        }
        let Some(kind) = kind_of(e.kind) else {
            return Ok(());
        };
        let meta = ViewEntry {
            name: comps.last().cloned().unwrap_or_default(),
            node: NodeRef(0),
            kind,
            mode: e.mode & 0o7777,
            uid: u32::try_from(e.uid).unwrap_or(u32::MAX),
            gid: u32::try_from(e.gid).unwrap_or(u32::MAX),
            size: 0,
            mtime_ns: e.mtime.as_ns(),
            link: e.link.clone().filter(|_| e.kind == EntryType::Symlink),
            device: e.device.map(|(a, b)| (u64::from(a), u64::from(b))),
            links: 1,
            xattrs: e
                .info
                .all_xattrs()
                .into_iter()
                .map(|(k, v)| (k.into_bytes(), v))
                .collect(),
        };
        let Some((name, parents)) = comps.split_last() else {
            // The root's own entry.
            let children = std::mem::take(&mut self.nodes[0].children);
            self.nodes[0].entry = ViewEntry {
                node: NodeRef::ROOT,
                ..meta
            };
            self.nodes[0].entry.kind = Kind::Dir;
            self.nodes[0].children = children;
            return Ok(());
        };
        let Some(parent) = self.folder(parents) else {
            self.skipped.push(escape(&e.path));
            return Ok(());
        };
        if e.kind == EntryType::Link {
            let first = BrowsePath::from_stored(e.link.as_deref().unwrap_or(b""));
            match self.find(first.components()) {
                Some(t) if self.nodes[t].entry.kind == Kind::File => {
                    self.nodes[t].entry.links += 1;
                    self.link(parent, name.clone(), t);
                }
                _ => self.skipped.push(escape(&e.path)),
            }
            return Ok(());
        }
        // A folder given again keeps what is already below it.
        if kind == Kind::Dir {
            if let Some(&old) = self.names.get(&(parent, name.clone())) {
                if self.nodes[old].entry.kind == Kind::Dir {
                    self.nodes[old].entry = ViewEntry {
                        node: NodeRef(old as u64),
                        ..meta
                    };
                    return Ok(());
                }
            }
        }
        let (size, data) = match kind {
            Kind::File => file_data(e)?,
            Kind::Symlink => (meta.link.as_ref().map_or(0, |l| l.len() as u64), Data::None),
            _ => (0, Data::None),
        };
        self.add(parent, name.clone(), ViewEntry { size, ..meta }, data);
        Ok(())
    }
}

/// A regular file's size and where its bytes are.
fn file_data<R: io::Read>(e: &mut Resolved<'_, '_, R>) -> io::Result<(u64, Data)> {
    let at = e.entry.raw_file_position();
    let Some(real) = e.info.sparse_realsize else {
        return Ok((e.size, Data::Plain { at }));
    };
    let (segs, map_len) = decode_map(e.entry)?;
    check_segments(&segs, real)?;
    let mut packed = at + map_len;
    let segments = segs
        .into_iter()
        .map(|seg| {
            let at = packed;
            packed += seg.1;
            (seg, at)
        })
        .collect();
    Ok((real, Data::Sparse { segments }))
}

impl TarView {
    /// Indexes the archive `file` (one pass through it).
    pub fn open(file: File) -> Result<Self, TargetError> {
        let (archive, b) = SeekableArchive::scan(file, |r| {
            let mut b = Builder::new();
            for_each(r, |e| {
                b.entry(e)?;
                Ok(Flow::Next)
            })?;
            Ok(b)
        })
        .map_err(|source| TargetError::Io {
            what: "indexing the archive".into(),
            source,
        })?;
        let mut nodes = b.nodes;
        for n in &mut nodes {
            n.children.sort();
        }
        Ok(TarView {
            archive,
            nodes,
            skipped: b.skipped,
        })
    }

    #[cfg(test)]
    /// Entries left out, their stored paths escaped.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    fn node(&self, r: NodeRef) -> Result<&Node, TargetError> {
        usize::try_from(r.0)
            .ok()
            .and_then(|i| self.nodes.get(i))
            .ok_or_else(|| TargetError::NotFound(format!("no entry {} in this archive", r.0)))
    }

    /// Exactly `len` decoded bytes from stream offset `at`.
    fn exact(&self, at: u64, len: usize) -> Result<Vec<u8>, TargetError> {
        let err = |source| TargetError::Io {
            what: "reading the archive".into(),
            source,
        };
        let out = self.archive.read_at(at, len).map_err(err)?;
        if out.len() < len {
            return Err(err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside this file",
            )));
        }
        Ok(out)
    }
}

impl BackupView for TarView {
    fn notes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .skipped
            .iter()
            .map(|p| format!("left out {p}: not a path inside the backup"))
            .collect();
        let members = self.archive.checkpoints().len();
        if self.archive.compression() != Compression::None && members <= 1 {
            out.push(format!(
                "the archive is one {:?} stream: a read decodes from its start (or from where an earlier read stopped)",
                self.archive.compression()
            ));
        }
        out
    }

    fn children(&self, dir: NodeRef) -> Result<Vec<ViewEntry>, TargetError> {
        let n = self.node(dir)?;
        Ok(n.children
            .iter()
            .map(|(name, i)| ViewEntry {
                name: name.clone(),
                ..self.nodes[*i].entry.clone()
            })
            .collect())
    }

    fn read(&self, file: NodeRef, offset: u64, len: usize) -> Result<Vec<u8>, TargetError> {
        let n = self.node(file)?;
        let size = n.entry.size;
        if offset >= size {
            return Ok(Vec::new());
        }
        let len = (size - offset).min(len as u64) as usize;
        match &n.data {
            Data::None => Ok(Vec::new()),
            Data::Plain { at } => self.exact(at + offset, len),
            Data::Sparse { segments } => {
                let mut out = vec![0u8; len];
                let end = offset + len as u64;
                for &((o, l), packed) in segments {
                    let (lo, hi) = (o.max(offset), (o + l).min(end));
                    if lo < hi {
                        let part = self.exact(packed + (lo - o), (hi - lo) as usize)?;
                        out[(lo - offset) as usize..(hi - offset) as usize].copy_from_slice(&part);
                    }
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(path: &str, kind: EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o640);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        h
    }

    fn archive(build: impl FnOnce(&mut tar::Builder<&mut Vec<u8>>)) -> File {
        let mut raw = Vec::new();
        {
            let mut b = tar::Builder::new(&mut raw);
            build(&mut b);
            b.finish().unwrap();
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&raw).unwrap();
        f
    }

    fn names(v: &TarView, dir: NodeRef) -> Vec<String> {
        v.children(dir)
            .unwrap()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    #[test]
    fn hostile_paths_are_left_out_and_later_entries_win() {
        let f = archive(|b| {
            b.append(&header("./a/one", EntryType::Regular, 3), &b"old"[..])
                .unwrap();
            let mut h = header("x", EntryType::Regular, 4);
            // `set_path` refuses `..`; write the name raw.
            h.as_old_mut().name[..9].copy_from_slice(b"../escape");
            h.as_old_mut().name[9] = 0;
            h.set_cksum();
            b.append(&h, &b"evil"[..]).unwrap();
            b.append(&header("a/one", EntryType::Regular, 3), &b"new"[..])
                .unwrap();
            let mut l = header("a/two", EntryType::Link, 0);
            l.set_link_name("a/one").unwrap();
            l.set_cksum();
            b.append(&l, &b""[..]).unwrap();
        });
        let v = TarView::open(f).unwrap();
        assert_eq!(names(&v, NodeRef::ROOT), ["a"]);
        assert_eq!(v.skipped(), ["../escape"]);
        let a = v.children(NodeRef::ROOT).unwrap()[0].node;
        let files = v.children(a).unwrap();
        assert_eq!(names(&v, a), ["one", "two"]);
        // The hardlink is the same node, with two names.
        assert_eq!(files[0].node, files[1].node);
        assert_eq!(files[0].links, 2);
        assert_eq!(v.read(files[1].node, 0, 100).unwrap(), b"new");
        assert_eq!(v.read(files[1].node, 1, 1).unwrap(), b"e");
    }

    #[test]
    fn a_file_on_the_way_is_not_a_folder() {
        let f = archive(|b| {
            b.append(&header("f", EntryType::Regular, 1), &b"1"[..])
                .unwrap();
            b.append(&header("f/g", EntryType::Regular, 1), &b"2"[..])
                .unwrap();
        });
        let v = TarView::open(f).unwrap();
        assert_eq!(names(&v, NodeRef::ROOT), ["f"]);
        assert_eq!(v.skipped(), ["f/g"]);
    }
}
