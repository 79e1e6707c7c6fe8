//! Reading a tar stream entry by entry with its pax and GNU extension
//! headers already applied: the real path and link target (however long),
//! numeric owners, nanosecond mtime, xattrs and ACLs, and sparse files'
//! real size. Shared by the extractor, `ls` and `cat`. Nothing here
//! trusts the stream: every extension header is bounded.

use std::io::{self, Read, Write};

use tar::EntryType;

use super::{acl, pax, sparse};
use crate::sys::time::Timestamp;

/// Longest pax or GNU long-name header accepted (xattrs included).
const MAX_META: u64 = 16 << 20;

fn read_meta(entry: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut d = Vec::new();
    entry.take(MAX_META + 1).read_to_end(&mut d)?;
    if d.len() as u64 > MAX_META {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "extended header larger than 16 MiB",
        ));
    }
    Ok(d)
}

/// What pax and GNU extension headers said about the next entry.
#[derive(Debug, Default, Clone)]
pub struct EntryInfo {
    /// `path`, or the GNU long name.
    pub path: Option<Vec<u8>>,
    /// `linkpath`, or the GNU long link.
    pub linkpath: Option<Vec<u8>>,
    /// `uid`.
    pub uid: Option<u64>,
    /// `gid`.
    pub gid: Option<u64>,
    /// `mtime`.
    pub mtime: Option<Timestamp>,
    /// `SCHILY.xattr.*`.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// `SCHILY.acl.access`.
    pub acl_access: Option<String>,
    /// `SCHILY.acl.default`.
    pub acl_default: Option<String>,
    /// `GNU.sparse.name`: the real name of a sparse file.
    pub sparse_name: Option<Vec<u8>>,
    /// `GNU.sparse.realsize`.
    pub sparse_realsize: Option<u64>,
}

impl EntryInfo {
    fn absorb(&mut self, key: &str, value: &[u8]) {
        let text = || std::str::from_utf8(value).ok();
        match key {
            "path" => self.path = Some(value.to_vec()),
            "linkpath" => self.linkpath = Some(value.to_vec()),
            "uid" => self.uid = text().and_then(|t| t.parse().ok()),
            "gid" => self.gid = text().and_then(|t| t.parse().ok()),
            "mtime" => self.mtime = text().and_then(Timestamp::parse_pax),
            "GNU.sparse.name" => self.sparse_name = Some(value.to_vec()),
            "GNU.sparse.realsize" => self.sparse_realsize = text().and_then(|t| t.parse().ok()),
            "SCHILY.acl.access" => self.acl_access = text().map(str::to_owned),
            "SCHILY.acl.default" => self.acl_default = text().map(str::to_owned),
            _ => {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    self.xattrs.push((name.to_owned(), value.to_vec()));
                }
            }
        }
    }

    /// Every xattr to set: the stored ones, plus ACLs given only as text;
    /// capabilities last (a later chown or xattr would clear them).
    pub fn all_xattrs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = self.xattrs.clone();
        for (name, text) in [
            (acl::XATTR_ACCESS, &self.acl_access),
            (acl::XATTR_DEFAULT, &self.acl_default),
        ] {
            if let Some(t) = text {
                if !out.iter().any(|(k, _)| k == name) {
                    if let Ok(bin) = acl::from_text(t) {
                        out.push((name.to_owned(), bin));
                    }
                }
            }
        }
        out.sort_by_key(|(k, _)| k == "security.capability");
        out
    }
}

/// One entry of the stream, its extension headers applied.
pub struct Resolved<'e, 'a, R: Read> {
    /// The entry itself (its data is read through it).
    pub entry: &'e mut tar::Entry<'a, R>,
    /// Its type.
    pub kind: EntryType,
    /// Its path as stored (`./a/b`).
    pub path: Vec<u8>,
    /// A link's target as stored.
    pub link: Option<Vec<u8>>,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Owner name in the header, if any.
    pub uname: Option<String>,
    /// Group name in the header, if any.
    pub gname: Option<String>,
    /// Modification time.
    pub mtime: Timestamp,
    /// The file's real size (a sparse file's, not its stored data's).
    pub size: u64,
    /// A device's numbers.
    pub device: Option<(u32, u32)>,
    /// What the extension headers said.
    pub info: EntryInfo,
}

impl<R: Read> Resolved<'_, '_, R> {
    /// Writes the file's content to `out`, holes of a sparse file as
    /// zeros; returns the bytes written.
    pub fn copy_content(&mut self, out: &mut dyn Write) -> io::Result<u64> {
        let Some(real) = self.info.sparse_realsize else {
            return io::copy(self.entry, out);
        };
        let (segs, _) = sparse::decode_map(self.entry)?;
        sparse::check_segments(&segs, real)?;
        let mut at = 0u64;
        let zeros = [0u8; 64 << 10];
        let fill = |out: &mut dyn Write, mut n: u64| -> io::Result<()> {
            while n > 0 {
                let k = n.min(zeros.len() as u64) as usize;
                out.write_all(&zeros[..k])?;
                n -= k as u64;
            }
            Ok(())
        };
        for (off, len) in segs {
            fill(out, off - at)?;
            let n = io::copy(&mut (&mut *self.entry).take(len), out)?;
            if n != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "sparse data cut short",
                ));
            }
            at = off + len;
        }
        fill(out, real - at)?;
        Ok(real)
    }
}

/// What the callback of [`for_each`] wants next.
pub enum Flow {
    /// The next entry.
    Next,
    /// Stop reading.
    Stop,
}

/// Calls `f` for every entry of the tar stream `src`, extension headers
/// applied (they are not entries of their own).
pub fn for_each<R: Read>(
    src: R,
    mut f: impl FnMut(&mut Resolved<'_, '_, R>) -> io::Result<Flow>,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(src);
    let mut pending = EntryInfo::default();
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        match entry.header().entry_type() {
            EntryType::XHeader => {
                let data = read_meta(&mut entry)?;
                for (k, v) in pax::parse(&data)? {
                    pending.absorb(&k, &v);
                }
                continue;
            }
            EntryType::XGlobalHeader => continue,
            EntryType::GNULongName | EntryType::GNULongLink => {
                let long = entry.header().entry_type() == EntryType::GNULongName;
                let mut d = read_meta(&mut entry)?;
                d.truncate(d.iter().position(|&b| b == 0).unwrap_or(d.len()));
                if long {
                    pending.path = Some(d);
                } else {
                    pending.linkpath = Some(d);
                }
                continue;
            }
            _ => {}
        }
        let info = std::mem::take(&mut pending);
        let h = entry.header().clone();
        let path = match (&info.sparse_name, &info.path) {
            (Some(p), _) | (None, Some(p)) => p.clone(),
            _ => h.path_bytes().into_owned(),
        };
        let link = match &info.linkpath {
            Some(l) => Some(l.clone()),
            None => h.link_name_bytes().map(|c| c.into_owned()),
        };
        let kind = h.entry_type();
        let device = matches!(kind, EntryType::Char | EntryType::Block).then(|| {
            (
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            )
        });
        let mut r = Resolved {
            kind,
            link: link.filter(|_| matches!(kind, EntryType::Symlink | EntryType::Link)),
            mode: h.mode()?,
            uid: info.uid.map_or_else(|| h.uid(), Ok)?,
            gid: info.gid.map_or_else(|| h.gid(), Ok)?,
            uname: h
                .username()
                .ok()
                .flatten()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            gname: h
                .groupname()
                .ok()
                .flatten()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            mtime: match info.mtime {
                Some(t) => t,
                None => Timestamp::new(h.mtime()? as i64, 0),
            },
            size: info.sparse_realsize.unwrap_or(h.size()?),
            device,
            path,
            info,
            entry: &mut entry,
        };
        if let Flow::Stop = f(&mut r)? {
            return Ok(());
        }
    }
    Ok(())
}
