//! A comparable description of a tree: type, mode, owner, mtime, content,
//! xattrs (ACLs and capabilities included), hardlink groups, device numbers
//! and, for sparse files, how much is allocated.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<String>,
    pub link: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Every name of this inode (hardlink identity), sorted.
    pub names: Vec<Vec<u8>>,
    /// Allocated bytes, recorded only for sparse files.
    pub sparse_alloc: Option<u64>,
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let n = rustix::fs::llistxattr_query(p).unwrap_or(0);
    if n == 0 {
        return out;
    }
    let mut names = vec![0u8; n];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    for name in names[..n].split(|&b| b == 0).filter(|b| !b.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let len = rustix::fs::lgetxattr_query(p, name).unwrap();
        let mut v = vec![0u8; len];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
        v.truncate(len);
        out.insert(name.to_owned(), v);
    }
    out
}

/// Describes every entry under `root` (`root` itself as ".") except sockets.
pub fn describe(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    let mut stack = vec![(root.to_owned(), b".".to_vec())];
    while let Some((p, rel)) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        if ft.is_socket() {
            continue;
        }
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "file"
        };
        let content = ft.is_file().then(|| {
            blake3::hash(&std::fs::read(&p).unwrap())
                .to_hex()
                .to_string()
        });
        let sparse = ft.is_file() && m.blocks() * 512 < m.len() / 2;
        if ft.is_file() && m.nlink() > 1 {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.clone());
        }
        out.insert(
            rel.clone(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                size: if ft.is_dir() { 0 } else { m.len() },
                content,
                link: ft.is_symlink().then(|| {
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    m.rdev()
                } else {
                    0
                },
                xattrs: xattrs(&p),
                names: Vec::new(),
                sparse_alloc: sparse.then_some(m.blocks() * 512),
            },
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                let mut r = rel.clone();
                r.push(b'/');
                r.extend_from_slice(e.file_name().as_bytes());
                stack.push((e.path(), r));
            }
        }
    }
    for (_, mut names) in inodes {
        names.sort();
        for n in &names {
            if let Some(node) = out.get_mut(n) {
                node.names = names.clone();
            }
        }
    }
    out
}

/// Asserts two descriptions match; sparse files must stay about as sparse.
pub fn assert_same(what: &str, src: &BTreeMap<Vec<u8>, Node>, got: &BTreeMap<Vec<u8>, Node>) {
    let show = |k: &[u8]| OsStr::from_bytes(k).to_string_lossy().into_owned();
    let missing: Vec<String> = src
        .keys()
        .filter(|k| !got.contains_key(*k))
        .map(|k| show(k))
        .collect();
    let extra: Vec<String> = got
        .keys()
        .filter(|k| !src.contains_key(*k))
        .map(|k| show(k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, extra {extra:?}"
    );
    let mut diffs = Vec::new();
    for (k, a) in src {
        let mut b = got[k].clone();
        if let (Some(sa), Some(sb)) = (a.sparse_alloc, b.sparse_alloc) {
            assert!(
                sb <= sa + (1 << 20),
                "{what}: {} lost its holes: {sb} bytes allocated, source {sa}",
                show(k)
            );
            b.sparse_alloc = Some(sa);
        }
        if *a != b {
            diffs.push(format!("{}:\n  source   {a:?}\n  restored {b:?}", show(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} entries differ:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// `m` as a restore from a repository reproduces it: without the root
/// folder (the destination's own), hardlink identities and holes (restic
/// records neither).
pub fn as_repository_restores(mut m: BTreeMap<Vec<u8>, Node>) -> BTreeMap<Vec<u8>, Node> {
    m.remove(&b"."[..]);
    for n in m.values_mut() {
        n.names.clear();
        n.sparse_alloc = None;
    }
    m
}
