//! Pack files as restic lays them out (`doc/design.rst`, "Pack Format"):
//! the sealed blobs one after another, then the sealed header listing them,
//! then the header's length (u32, little-endian). A header entry is the
//! blob's type (0 data, 1 tree; 2 and 3 when compressed), its stored length
//! (u32 LE), for compressed blobs its plain length (u32 LE), and its id.
//! A pack's name is the SHA-256 of its bytes.

use sha2::{Digest, Sha256};

use super::seal::{SealError, Sealer};

/// A blob id or file name: the SHA-256 of the plain blob or of the file.
pub(crate) type Hash = [u8; 32];

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BlobKind {
    /// File content.
    Data,
    /// A tree (a folder's listing, JSON).
    Tree,
}

impl BlobKind {
    /// The name index files use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
        }
    }
}

/// One blob, compressed (or not) and sealed, ready to be packed.
#[derive(Debug)]
pub(crate) struct SealedBlob {
    /// SHA-256 of the plain content.
    pub id: Hash,
    /// Data or tree.
    pub kind: BlobKind,
    /// The sealed bytes as stored.
    pub sealed: Vec<u8>,
    /// The plain length, when what was sealed is zstd-compressed.
    pub raw_len: Option<u32>,
}

/// Where one blob lies in its pack (an index file entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// The blob's id.
    pub id: Hash,
    /// Data or tree.
    pub kind: BlobKind,
    /// Offset in the pack.
    pub offset: u32,
    /// Stored (sealed) length.
    pub length: u32,
    /// Plain length of a compressed blob.
    pub raw_len: Option<u32>,
}

/// A pack written: its name and where each of its blobs lies.
pub(crate) type WrittenPack = (Hash, Vec<Placed>);

/// A finished pack: its bytes, its name and where each blob lies.
#[derive(Debug)]
pub(crate) struct FinishedPack {
    /// The pack file.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`: the file's name.
    pub id: Hash,
    /// Its blobs, in order.
    pub blobs: Vec<Placed>,
}

/// A pack being filled.
#[derive(Debug, Default)]
pub(crate) struct PackBuilder {
    bytes: Vec<u8>,
    blobs: Vec<Placed>,
}

impl PackBuilder {
    /// Bytes of blobs so far.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no blob was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Appends `blob` (a pack holds at most 4 GiB: the caller finishes
    /// packs long before).
    pub(crate) fn add(&mut self, blob: SealedBlob) {
        self.blobs.push(Placed {
            id: blob.id,
            kind: blob.kind,
            offset: self.bytes.len() as u32,
            length: blob.sealed.len() as u32,
            raw_len: blob.raw_len,
        });
        self.bytes.extend_from_slice(&blob.sealed);
    }

    /// The pack file: blobs, sealed header, header length.
    pub(crate) fn finish(mut self, sealer: &Sealer) -> Result<FinishedPack, SealError> {
        let header = sealer.seal(&header(&self.blobs))?;
        self.bytes.extend_from_slice(&header);
        self.bytes
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        Ok(FinishedPack {
            id: sha256(&self.bytes),
            bytes: self.bytes,
            blobs: self.blobs,
        })
    }
}

/// The plain header of a pack holding `blobs`.
fn header(blobs: &[Placed]) -> Vec<u8> {
    let mut h = Vec::with_capacity(blobs.len() * 41);
    for b in blobs {
        let tpe: u8 = match (b.kind, b.raw_len.is_some()) {
            (BlobKind::Data, false) => 0,
            (BlobKind::Tree, false) => 1,
            (BlobKind::Data, true) => 2,
            (BlobKind::Tree, true) => 3,
        };
        h.push(tpe);
        h.extend_from_slice(&b.length.to_le_bytes());
        if let Some(raw) = b.raw_len {
            h.extend_from_slice(&raw.to_le_bytes());
        }
        h.extend_from_slice(&b.id);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustic_core::repofile::MasterKey;

    #[test]
    fn a_pack_is_blobs_then_sealed_header_then_its_length() {
        let s = Sealer::new(&MasterKey::new()).unwrap();
        let mut p = PackBuilder::default();
        let a = s.seal(b"aaaa").unwrap();
        let t = s.seal(b"zstd-ish").unwrap();
        p.add(SealedBlob {
            id: sha256(b"aaaa"),
            kind: BlobKind::Data,
            sealed: a.clone(),
            raw_len: None,
        });
        p.add(SealedBlob {
            id: [7; 32],
            kind: BlobKind::Tree,
            sealed: t.clone(),
            raw_len: Some(100),
        });
        let f = p.finish(&s).unwrap();
        assert_eq!(f.id, sha256(&f.bytes));
        assert_eq!(&f.bytes[..a.len()], &a[..]);
        let n = f.bytes.len();
        let hlen = u32::from_le_bytes(f.bytes[n - 4..].try_into().unwrap()) as usize;
        let h = s.open(&f.bytes[n - 4 - hlen..n - 4]).unwrap();
        assert_eq!(h.len(), 37 + 41);
        assert_eq!(h[0], 0);
        assert_eq!(
            u32::from_le_bytes(h[1..5].try_into().unwrap()),
            a.len() as u32
        );
        assert_eq!(&h[5..37], &sha256(b"aaaa"));
        assert_eq!(h[37], 3);
        assert_eq!(u32::from_le_bytes(h[42..46].try_into().unwrap()), 100);
        assert_eq!(f.blobs[1].offset, a.len() as u32);
        assert_eq!(f.blobs[1].length, t.len() as u32);
    }
}
