//! Looking into a snapshot through its trees: `ls`, `cat`, and the checks
//! of `restore --include` made before anything is written. Only the trees
//! on the way and the blobs of what is asked for are read.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use rustic_core::repofile::{Node, NodeType};
use rustic_core::{IndexedFull, Repository, TreeId};

use super::tar_stream::split_dev;
use crate::archive::walk::Kind;
use crate::sys::time::Timestamp;
use crate::target::browse::{escape, BrowsePath, LsEntry};
use crate::target::repository::gomode::posix_mode;
use crate::target::repository::{RepoError, RESERVED_DIR};

pub(super) fn kind_of(n: &Node) -> Kind {
    match n.node_type {
        NodeType::Dir => Kind::Dir,
        NodeType::File => Kind::File,
        NodeType::Symlink { .. } => Kind::Symlink,
        NodeType::Fifo => Kind::Fifo,
        NodeType::Chardev { .. } => Kind::Char,
        NodeType::Dev { .. } => Kind::Block,
        NodeType::Socket => Kind::Socket,
    }
}

/// A node as `ls` shows it, at path `raw`.
fn entry(n: &Node, raw: Vec<u8>) -> LsEntry {
    let m = &n.meta;
    LsEntry {
        path: escape(&raw),
        kind: kind_of(n),
        mode: posix_mode(m.mode.unwrap_or(0o644)),
        uid: u64::from(m.uid.unwrap_or(0)),
        gid: u64::from(m.gid.unwrap_or(0)),
        user: m.user.clone(),
        group: m.group.clone(),
        size: if n.is_file() { m.size } else { 0 },
        mtime_ns: m
            .mtime
            .as_ref()
            .map(|t| Timestamp::new(t.as_second(), i64::from(t.subsec_nanosecond())).as_ns())
            .unwrap_or(0),
        link: match &n.node_type {
            NodeType::Symlink { .. } => Some(escape(n.node_type.to_link().as_os_str().as_bytes())),
            _ => None,
        },
        device: match n.node_type {
            NodeType::Dev { device } | NodeType::Chardev { device } => Some(split_dev(device)),
            _ => None,
        },
        raw_path: raw,
    }
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> RepoError {
    RepoError::Invalid(format!("{}: {e}", what.into()))
}

/// The children of tree `id`; at the top, without the reserved folder.
fn children<S: IndexedFull>(
    repo: &Repository<S>,
    id: TreeId,
    top: bool,
) -> Result<Vec<Node>, RepoError> {
    let tree = repo
        .get_tree(&id)
        .map_err(|e| err(format!("reading tree {id}"), e))?;
    Ok(tree
        .nodes
        .into_iter()
        .filter(|n| !(top && n.name().as_bytes() == RESERVED_DIR.as_bytes()))
        .collect())
}

/// The node at `path` below the root tree: every component on the way
/// must be a folder.
pub(super) fn find<S: IndexedFull>(
    repo: &Repository<S>,
    root: TreeId,
    path: &BrowsePath,
) -> Result<Node, RepoError> {
    let mut tree = root;
    let comps = path.components();
    for (i, c) in comps.iter().enumerate() {
        let node = children(repo, tree, i == 0)?
            .into_iter()
            .find(|n| n.name().as_bytes() == c.as_slice())
            .ok_or_else(|| RepoError::NotFound {
                location: String::new(),
                message: format!("no {path} in this snapshot (see `freezeframe ls`)"),
            })?;
        if i + 1 == comps.len() {
            return Ok(node);
        }
        match (node.is_dir(), node.subtree) {
            (true, Some(sub)) => tree = sub,
            _ => {
                return Err(RepoError::Invalid(format!(
                    "{path}: {} on its way is not a folder (a symlink?); name the path it points to instead",
                    escape(&c[..])
                )))
            }
        }
    }
    Err(RepoError::Invalid("the root is not an entry".into()))
}

/// Every entry at and below `under` (all: the root), in path order.
pub(super) fn ls<S: IndexedFull>(
    repo: &Repository<S>,
    root: TreeId,
    under: Option<&BrowsePath>,
) -> Result<Vec<LsEntry>, RepoError> {
    let mut out = Vec::new();
    match under.filter(|u| !u.is_root()) {
        None => walk(repo, root, Vec::new(), true, &mut out)?,
        Some(u) => {
            let n = find(repo, root, u)?;
            let raw = u.to_bytes();
            out.push(entry(&n, raw.clone()));
            if let (true, Some(sub)) = (n.is_dir(), n.subtree) {
                walk(repo, sub, raw, false, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn walk<S: IndexedFull>(
    repo: &Repository<S>,
    id: TreeId,
    prefix: Vec<u8>,
    top: bool,
    out: &mut Vec<LsEntry>,
) -> Result<(), RepoError> {
    for n in children(repo, id, top)? {
        let mut raw = prefix.clone();
        if !raw.is_empty() {
            raw.push(b'/');
        }
        raw.extend_from_slice(n.name().as_bytes());
        out.push(entry(&n, raw.clone()));
        if let (true, Some(sub)) = (n.is_dir(), n.subtree) {
            walk(repo, sub, raw, false, out)?;
        }
    }
    Ok(())
}

/// Writes the content of the file at `path` to `out`; its size.
pub(super) fn cat<S: IndexedFull>(
    repo: &Repository<S>,
    root: TreeId,
    path: &BrowsePath,
    out: &mut dyn Write,
) -> Result<u64, RepoError> {
    let n = find(repo, root, path)?;
    match &n.node_type {
        NodeType::File => {
            let mut w = out;
            repo.dump(&n, &mut w)
                .map_err(|e| err(format!("reading {path}"), e))?;
            Ok(n.meta.size)
        }
        NodeType::Symlink { .. } => Err(RepoError::Invalid(format!(
            "{path} is a symlink to {}: cat its target",
            escape(n.node_type.to_link().as_os_str().as_bytes())
        ))),
        _ => Err(RepoError::Invalid(format!(
            "{path} is not a regular file ({})",
            kind_of(&n)
        ))),
    }
}
