//! Index files (which pack holds which blob, restic's JSON) and the
//! repository's known blobs built from them: data blob ids (to skip what is
//! stored) and where each tree lies (to read a parent snapshot's trees).
//! Entries in rustic's `packs_to_delete` (packs a two-phase prune marked)
//! are not known: a blob there may be gone by the time a snapshot names it.
//! What was loaded before the repository lock was taken (a preload, or the
//! container before in the same run) is refreshed under it: an index file
//! gone means a prune ran, and everything is read again.

use std::collections::{HashMap, HashSet};

use rustic_core::FileType;
use serde::{Deserialize, Serialize};

use super::pack::{BlobKind, Hash, Placed, WrittenPack};
use super::store::{hex, id_bytes, Store};
use super::WriteError;

#[derive(Debug, Serialize, Deserialize)]
struct IndexJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    supersedes: Option<Vec<String>>,
    packs: Vec<PackJson>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PackJson {
    id: String,
    blobs: Vec<BlobJson>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BlobJson {
    id: String,
    #[serde(rename = "type")]
    tpe: String,
    offset: u32,
    length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uncompressed_length: Option<u32>,
}

/// Where a tree blob lies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeAt {
    /// Its pack.
    pub pack: Hash,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored length.
    pub length: u32,
    /// Plain length, when compressed.
    pub raw_len: Option<u32>,
}

/// The blobs the repository holds.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Data blobs and their plain lengths.
    data: HashMap<Hash, u32>,
    trees: HashMap<Hash, TreeAt>,
    /// The index files all this was read from (or written with).
    files: HashSet<Hash>,
}

fn unhex(s: &str) -> Option<Hash> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).ok()?;
    Some(h)
}

impl Known {
    /// Reads every index file of `store`.
    pub(crate) fn load(store: &Store) -> Result<Self, WriteError> {
        let mut known = Known::default();
        known.refresh(store)?;
        Ok(known)
    }

    /// Brings this up to the index files `store` lists now: only the new
    /// ones are read, unless one read before is gone (a prune replaced
    /// it, and blobs known from it may be gone too): then all of them.
    /// Returns whether everything was read again.
    pub(crate) fn refresh(&mut self, store: &Store) -> Result<bool, WriteError> {
        let listed: Vec<(rustic_core::Id, Hash)> = store
            .list(FileType::Index)?
            .into_iter()
            .map(|id| (id, id_bytes(&id)))
            .collect();
        let now: HashSet<Hash> = listed.iter().map(|(_, h)| *h).collect();
        let reload = !self.files.is_subset(&now);
        if reload {
            *self = Known::default();
        }
        for (id, h) in &listed {
            if !self.files.contains(h) {
                self.read_file(store, id)?;
                self.files.insert(*h);
            }
        }
        Ok(reload)
    }

    /// Adds the blobs of index file `id`.
    fn read_file(&mut self, store: &Store, id: &rustic_core::Id) -> Result<(), WriteError> {
        let json = store.read_json(FileType::Index, id)?;
        let index: IndexJson = serde_json::from_slice(&json)
            .map_err(|e| WriteError::Damaged(format!("index file {id}: {e}")))?;
        for p in &index.packs {
            let pack = unhex(&p.id)
                .ok_or_else(|| WriteError::Damaged(format!("index file {id}: pack id")))?;
            for b in &p.blobs {
                let bid = unhex(&b.id)
                    .ok_or_else(|| WriteError::Damaged(format!("index file {id}: blob id")))?;
                let kind = match b.tpe.as_str() {
                    "data" => BlobKind::Data,
                    "tree" => BlobKind::Tree,
                    _ => continue,
                };
                self.insert(
                    pack,
                    &Placed {
                        id: bid,
                        kind,
                        offset: b.offset,
                        length: b.length,
                        raw_len: b.uncompressed_length,
                    },
                );
            }
        }
        Ok(())
    }

    /// Whether the repository holds blob `id` of `kind`.
    pub(crate) fn has(&self, kind: BlobKind, id: &Hash) -> bool {
        match kind {
            BlobKind::Data => self.data.contains_key(id),
            BlobKind::Tree => self.trees.contains_key(id),
        }
    }

    /// The plain length of data blob `id`, if the repository holds it.
    pub(crate) fn data_len(&self, id: &Hash) -> Option<u32> {
        self.data.get(id).copied()
    }

    /// Where tree `id` lies.
    pub(crate) fn tree(&self, id: &Hash) -> Option<TreeAt> {
        self.trees.get(id).copied()
    }

    /// Adds the blobs of packs now written and indexed in `files`.
    pub(crate) fn add(&mut self, packs: &[WrittenPack], files: &[Hash]) {
        for (pack, blobs) in packs {
            for b in blobs {
                self.insert(*pack, b);
            }
        }
        self.files.extend(files);
    }

    /// Adds blob `b` of pack `pack`.
    fn insert(&mut self, pack: Hash, b: &Placed) {
        match b.kind {
            BlobKind::Data => {
                let plain = b
                    .raw_len
                    .unwrap_or_else(|| b.length.saturating_sub(super::seal::OVERHEAD as u32));
                self.data.insert(b.id, plain);
            }
            BlobKind::Tree => {
                self.trees.insert(
                    b.id,
                    TreeAt {
                        pack,
                        offset: b.offset,
                        length: b.length,
                        raw_len: b.raw_len,
                    },
                );
            }
        }
    }
}

/// The JSON of an index file naming `packs`.
pub(crate) fn index_json(packs: &[WrittenPack]) -> Vec<u8> {
    let index = IndexJson {
        supersedes: None,
        packs: packs
            .iter()
            .map(|(id, blobs)| PackJson {
                id: hex(id),
                blobs: blobs
                    .iter()
                    .map(|b| BlobJson {
                        id: hex(&b.id),
                        tpe: b.kind.name().into(),
                        offset: b.offset,
                        length: b.length,
                        uncompressed_length: b.raw_len,
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_vec(&index).expect("an index serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_json_is_restics_shape() {
        let p = Placed {
            id: [1; 32],
            kind: BlobKind::Data,
            offset: 0,
            length: 50,
            raw_len: Some(70),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&index_json(&[([2; 32], vec![p])])).unwrap();
        let b = &v["packs"][0]["blobs"][0];
        assert_eq!(v["packs"][0]["id"], hex(&[2; 32]));
        assert_eq!(
            (b["type"].as_str(), b["length"].as_u64()),
            (Some("data"), Some(50))
        );
        assert_eq!(b["uncompressed_length"], 70);
        assert!(v.get("supersedes").is_none());
    }
}
