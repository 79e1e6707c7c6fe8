//! Looking into a tar archive: `ls` and `cat` read it through to the end
//! (a compressed tar stream has no index), and `restore --include` picks
//! its entries. A hardlink whose first name lies outside a selection gets
//! that first name's content under its own name: a first pass finds them.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use tar::EntryType;

use crate::archive::extract::{Pick, Selector};
use crate::archive::read::{for_each, Flow, Resolved};
use crate::archive::walk::Kind;
use crate::target::browse::{escape, BrowsePath, LsEntry};
use crate::target::TargetError;

pub(super) fn kind_of(t: EntryType) -> Option<Kind> {
    Some(match t {
        EntryType::Directory => Kind::Dir,
        EntryType::Regular | EntryType::Continuous | EntryType::Link => Kind::File,
        EntryType::Symlink => Kind::Symlink,
        EntryType::Fifo => Kind::Fifo,
        EntryType::Char => Kind::Char,
        EntryType::Block => Kind::Block,
        _ => return None,
    })
}

fn entry_of<R: Read>(e: &Resolved<'_, '_, R>) -> Option<LsEntry> {
    let raw = BrowsePath::from_stored(&e.path).to_bytes();
    Some(LsEntry {
        path: escape(&raw),
        kind: kind_of(e.kind)?,
        mode: e.mode & 0o7777,
        uid: e.uid,
        gid: e.gid,
        user: e.uname.clone(),
        group: e.gname.clone(),
        size: if matches!(e.kind, EntryType::Regular | EntryType::Continuous) {
            e.size
        } else {
            0
        },
        mtime_ns: e.mtime.as_ns(),
        link: (e.kind == EntryType::Symlink)
            .then(|| e.link.as_deref().map(escape))
            .flatten(),
        device: e.device.map(|(a, b)| (u64::from(a), u64::from(b))),
        raw_path: raw,
    })
}

fn read_err(e: io::Error) -> TargetError {
    TargetError::Io {
        what: "reading the archive".into(),
        source: e,
    }
}

/// The entries of the archive `src` at and below `under`, in archive
/// order (the root itself left out). A hardlink shows as the file it is.
pub(super) fn ls(src: impl Read, under: Option<&BrowsePath>) -> Result<Vec<LsEntry>, TargetError> {
    let mut out = Vec::new();
    let mut files: HashMap<Vec<u8>, LsEntry> = HashMap::new();
    for_each(src, |e| {
        let Some(mut entry) = entry_of(e) else {
            return Ok(Flow::Next);
        };
        if entry.raw_path.is_empty() {
            return Ok(Flow::Next);
        }
        if e.kind == EntryType::Link {
            let first = BrowsePath::from_stored(e.link.as_deref().unwrap_or(b"")).to_bytes();
            if let Some(f) = files.get(&first) {
                entry = LsEntry {
                    path: entry.path,
                    raw_path: entry.raw_path,
                    ..f.clone()
                };
            }
        } else if entry.kind == Kind::File {
            files.insert(entry.raw_path.clone(), entry.clone());
        }
        let p = BrowsePath::from_stored(&entry.raw_path);
        if under.is_none_or(|u| p.is_within(u)) {
            out.push(entry);
        }
        Ok(Flow::Next)
    })
    .map_err(read_err)?;
    Ok(out)
}

/// What `cat` found of the path it looked for.
pub(super) enum Found {
    /// Its content was written: this many bytes.
    Written(u64),
    /// It is a hardlink to this (stored) first name: look again for that.
    LinkTo(Vec<u8>),
}

/// Writes the content of the regular file `want` of the archive `src`.
pub(super) fn cat(
    src: impl Read,
    want: &BrowsePath,
    out: &mut dyn Write,
) -> Result<Found, TargetError> {
    let mut found: Option<Result<Found, TargetError>> = None;
    for_each(src, |e| {
        if BrowsePath::from_stored(&e.path) != *want {
            return Ok(Flow::Next);
        }
        found = Some(match e.kind {
            EntryType::Regular | EntryType::Continuous => e
                .copy_content(out)
                .map(Found::Written)
                .map_err(|source| TargetError::Io {
                    what: format!("writing {want}"),
                    source,
                }),
            EntryType::Link => Ok(Found::LinkTo(e.link.clone().unwrap_or_default())),
            EntryType::Symlink => Err(TargetError::Usage(format!(
                "{want} is a symlink to {}: cat its target",
                escape(e.link.as_deref().unwrap_or(b""))
            ))),
            other => Err(TargetError::Usage(format!(
                "{want} is not a regular file ({})",
                kind_of(other).map_or("other", Kind::name)
            ))),
        });
        Ok(Flow::Stop)
    })
    .map_err(read_err)?;
    found.unwrap_or_else(|| Err(TargetError::NotFound(format!("no {want} in this backup"))))
}

/// The selection of `restore --include` over a tar archive.
pub(super) struct Include {
    includes: Vec<BrowsePath>,
    /// First names (normalised) outside the selection → the selected link
    /// name their content goes to.
    redirect: HashMap<Vec<u8>, Vec<u8>>,
}

impl Include {
    /// A selection of `includes`; `first_pass` is the archive once more,
    /// read first to find hardlinks whose first name is not selected, and
    /// to refuse, before anything is written, an include that matches
    /// nothing or passes through something that is not a folder.
    pub(super) fn new(includes: &[BrowsePath], first_pass: impl Read) -> Result<Self, TargetError> {
        let mut redirect: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut hits = vec![false; includes.len()];
        let mut through: Option<String> = None;
        let selected = |p: &BrowsePath| includes.iter().any(|i| p.is_within(i));
        for_each(first_pass, |e| {
            let me = BrowsePath::from_stored(&e.path);
            for (i, inc) in includes.iter().enumerate() {
                hits[i] |= me.is_within(inc);
                if me.is_ancestor_of(inc) && e.kind != EntryType::Directory && through.is_none() {
                    through = Some(format!(
                        "--include {inc}: {me} on its way is not a folder (a symlink?); name the path it points to instead"
                    ));
                }
            }
            if e.kind == EntryType::Link {
                let first = BrowsePath::from_stored(e.link.as_deref().unwrap_or(b""));
                if selected(&me) && !selected(&first) {
                    redirect.entry(first.to_bytes()).or_insert_with(|| me.to_bytes());
                }
            }
            Ok(Flow::Next)
        })
        .map_err(read_err)?;
        if let Some(why) = through {
            return Err(TargetError::Usage(why));
        }
        let missing: Vec<String> = includes
            .iter()
            .zip(&hits)
            .filter(|(_, hit)| !**hit)
            .map(|(i, _)| i.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(TargetError::NotFound(format!(
                "--include {}: no such path in this backup (see `freezeframe ls`)",
                missing.join(", ")
            )));
        }
        Ok(Self {
            includes: includes.to_vec(),
            redirect,
        })
    }
}

impl Selector for Include {
    fn pick(&mut self, path: &[u8], kind: EntryType, link: Option<&[u8]>) -> Pick {
        let p = BrowsePath::from_stored(path);
        if p.is_root() {
            return Pick::Ancestor;
        }
        if self.includes.iter().any(|inc| p.is_within(inc)) {
            if kind == EntryType::Link {
                let first = BrowsePath::from_stored(link.unwrap_or(b"")).to_bytes();
                if let Some(to) = self.redirect.get(&first) {
                    // The first name's content went to `to` already.
                    return if *to == p.to_bytes() {
                        Pick::Skip
                    } else {
                        Pick::LinkTo(to.clone())
                    };
                }
            }
            return Pick::Restore;
        }
        if self.includes.iter().any(|inc| p.is_ancestor_of(inc)) {
            return Pick::Ancestor;
        }
        if let Some(to) = self.redirect.get(&p.to_bytes()) {
            return Pick::As(to.clone());
        }
        Pick::Skip
    }
}
