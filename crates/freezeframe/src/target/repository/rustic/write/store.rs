//! The repository as the writer sees it: a backend to put sealed files
//! into, the key, the format version and compression level; and the
//! encoding of the JSON files (index, snapshot): version 2 repositories
//! store `0x02 ‖ zstd(json)`, version 1 plain JSON, both sealed and named
//! by the SHA-256 of what is stored.

use std::sync::Arc;

use rustic_core::repofile::{ConfigFile, MasterKey};
use rustic_core::{FileType, Id, WriteBackend};

use super::lock::LockDir;
use super::pack::{sha256, FinishedPack, Hash, PackBuilder, SealedBlob, WrittenPack};
use super::seal::{SealError, Sealer};
use super::WriteError;

/// Where the writer puts files, and how it encodes them.
#[derive(Clone)]
pub(crate) struct Store {
    be: Arc<dyn WriteBackend>,
    locks: Arc<dyn LockDir>,
    sealer: Sealer,
    /// zstd level for blobs and JSON files; `None`: stored uncompressed
    /// (version 1, or compression turned off).
    level: Option<i32>,
    /// `bwlimit` on pack uploads, shared by every container of a run.
    pub(crate) limit: Arc<crate::sys::ratelimit::RateLimit>,
}

/// A file's marker of zstd-compressed JSON (format version 2).
const COMPRESSED_JSON: u8 = 2;

impl Store {
    /// The store of the repository `config` describes, opened with `key`.
    pub(crate) fn new(
        be: Arc<dyn WriteBackend>,
        locks: Arc<dyn LockDir>,
        key: &MasterKey,
        config: &ConfigFile,
    ) -> Result<Self, SealError> {
        // As rustic_core and restic read the config: version 1 has no
        // compression; in version 2, no level is the default and 0 is off.
        let level = match (config.version, config.compression) {
            (1, _) | (_, Some(0)) => None,
            (_, None) => Some(0),
            (_, Some(l)) => Some(l),
        };
        Ok(Self {
            be,
            locks,
            sealer: Sealer::new(key)?,
            level,
            limit: crate::sys::ratelimit::RateLimit::new(None),
        })
    }

    /// Compresses (when that shrinks it) and seals one blob.
    pub(crate) fn seal_blob(
        &self,
        id: Hash,
        kind: super::pack::BlobKind,
        plain: &[u8],
    ) -> Result<SealedBlob, WriteError> {
        let packed = match self.level {
            Some(l) => compress(plain, l).ok().filter(|c| c.len() < plain.len()),
            None => None,
        };
        let (body, raw_len) = match &packed {
            Some(c) => (&c[..], Some(plain.len() as u32)),
            None => (plain, None),
        };
        Ok(SealedBlob {
            id,
            kind,
            sealed: self.sealer.seal(body)?,
            raw_len,
        })
    }

    /// Finishes `pack` and writes it under its name.
    pub(crate) fn flush(&self, pack: PackBuilder) -> Result<WrittenPack, WriteError> {
        self.upload(pack.finish(&self.sealer)?)
    }

    /// Writes a finished pack under its name.
    pub(crate) fn upload(&self, pack: FinishedPack) -> Result<WrittenPack, WriteError> {
        let FinishedPack { bytes, id, blobs } = pack;
        self.be
            .write_bytes(FileType::Pack, &Id::new(id), false, {
                self.limit.take(bytes.len());
                bytes.into()
            })
            .map_err(|e| WriteError::Backend(format!("writing pack {}: {e}", hex(&id))))?;
        Ok((id, blobs))
    }

    /// The key's sealer (packs seal their headers with it).
    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Encodes and seals a JSON file; returns its name and bytes.
    pub(crate) fn seal_json(&self, json: &[u8]) -> Result<(Hash, Vec<u8>), WriteError> {
        let plain = match self.level {
            Some(l) => {
                let mut v = vec![COMPRESSED_JSON];
                v.extend(
                    compress(json, l)
                        .map_err(|e| WriteError::Backend(format!("compressing: {e}")))?,
                );
                v
            }
            None => json.to_vec(),
        };
        let sealed = self.sealer.seal(&plain)?;
        Ok((sha256(&sealed), sealed))
    }

    /// Checks (against its name `name`), opens and decodes a JSON file.
    pub(crate) fn open_json(&self, stored: &[u8], name: &str) -> Result<Vec<u8>, WriteError> {
        if hex(&sha256(stored)) != name {
            return Err(WriteError::Damaged(format!(
                "file {name} does not match its name"
            )));
        }
        let plain = self.sealer.open(stored)?;
        match plain.first() {
            Some(&COMPRESSED_JSON) => zstd::stream::decode_all(&plain[1..])
                .map_err(|e| WriteError::Damaged(format!("file {name}: {e}"))),
            _ => Ok(plain),
        }
    }

    /// Encodes, seals and writes a JSON file; returns its name.
    pub(crate) fn write_json(&self, tpe: FileType, json: &[u8]) -> Result<Hash, WriteError> {
        let (id, sealed) = self.seal_json(json)?;
        self.be
            .write_bytes(tpe, &Id::new(id), true, sealed.into())
            .map_err(|e| WriteError::Backend(format!("writing {tpe:?} file {}: {e}", hex(&id))))?;
        Ok(id)
    }

    /// The repository's `locks/` folder.
    pub(crate) fn locks(&self) -> &dyn LockDir {
        &*self.locks
    }

    /// The names of all files of type `tpe`.
    pub(crate) fn list(&self, tpe: FileType) -> Result<Vec<Id>, WriteError> {
        self.be
            .list(tpe)
            .map_err(|e| WriteError::Backend(format!("listing {tpe:?} files: {e}")))
    }

    /// Reads, checks and decodes a JSON file.
    pub(crate) fn read_json(&self, tpe: FileType, id: &Id) -> Result<Vec<u8>, WriteError> {
        let stored = self
            .be
            .read_full(tpe, id)
            .map_err(|e| WriteError::Backend(format!("reading {tpe:?} file {id}: {e}")))?;
        self.open_json(&stored, id.to_hex().as_str())
    }

    /// Reads one blob: `length` stored bytes at `offset` of pack `pack`,
    /// opened, decompressed when `raw_len` says so, checked against `id`.
    pub(crate) fn read_blob(
        &self,
        pack: &Hash,
        offset: u32,
        length: u32,
        raw_len: Option<u32>,
        id: &Hash,
    ) -> Result<Vec<u8>, WriteError> {
        let stored = self
            .be
            .read_partial(FileType::Pack, &Id::new(*pack), false, offset, length)
            .map_err(|e| WriteError::Backend(format!("reading pack {}: {e}", hex(pack))))?;
        let mut plain = self.sealer.open(&stored)?;
        if let Some(n) = raw_len {
            plain = zstd::bulk::decompress(&plain, n as usize)
                .map_err(|e| WriteError::Damaged(format!("blob {}: {e}", hex(id))))?;
        }
        if sha256(&plain) != *id {
            return Err(WriteError::Damaged(format!(
                "blob {} does not match its id",
                hex(id)
            )));
        }
        Ok(plain)
    }
}

thread_local! {
    /// Each thread's zstd context and its level: a new context per chunk
    /// would clear its tables every time (a tenth of a backup's CPU).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// `plain`, zstd-compressed at `level` with this thread's context.
fn compress(plain: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let cctx = match &mut *c {
            Some((l, cctx)) if *l == level => cctx,
            slot => &mut slot.insert((level, zstd::bulk::Compressor::new(level)?)).1,
        };
        cctx.compress(plain)
    })
}

/// Lower-case hex of an id.
pub(crate) fn hex(id: &Hash) -> String {
    Id::new(*id).to_hex().to_string()
}

/// The bytes of a rustic_core id (it shows them only as hex).
pub(crate) fn id_bytes(id: &Id) -> Hash {
    let mut h = [0u8; 32];
    // A HexId is always 64 hex digits.
    let _ = hex::decode_to_slice(id.to_hex().as_str(), &mut h);
    h
}
