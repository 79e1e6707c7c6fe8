//! Writing a tree as a POSIX pax tar stream that GNU tar extracts: every file
//! type, numeric owners (plus the container's names), nanosecond mtimes,
//! xattrs and ACLs as GNU tar writes them (`SCHILY.xattr.*`, `SCHILY.acl.*`),
//! hardlinks, and sparse files in GNU's PAX 1.0 sparse format.
//!
//! A file that vanishes or cannot be read is a warning, never fatal: the
//! archive stays well-formed and the problem is reported.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use tar::{EntryType, Header};

use super::exclude::{walk_excluding, ExcludeRecord};
use super::owners::Owners;
use super::walk::{Entry, Kind, Meta, Visitor};
use super::{acl, sparse};
use crate::config::Excludes;
use crate::sys::shown::escape;

/// Largest value of the 7-digit octal uid/gid fields.
const MAX_ID: u64 = 0o7777777;
/// Largest value of the 11-digit octal size field.
const MAX_SIZE: u64 = 0o77777777777;
/// Longest name the ustar `name` field holds.
const NAME_LEN: usize = 100;

/// What walking the tree found, beyond the archive itself.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TreeReport {
    /// Entries written.
    pub entries: u64,
    /// Bytes of file data read.
    pub bytes_read: u64,
    /// Files that could not be read or vanished (counted, not fatal).
    pub unreadable: u64,
    /// Sockets, which tar cannot hold (they are recreated by their owners).
    pub skipped_sockets: Vec<String>,
    /// Human-readable warnings, one per problem.
    pub warnings: Vec<String>,
    /// Each exclude pattern and how many entries it skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<ExcludeRecord>,
}

/// Walks `root` and writes it as a tar stream to `out`. `progress` is called
/// with the number of data bytes read, as they are read; an error from it
/// (a cancelled run) stops the walk.
pub fn write_tree<W: Write>(
    root: &Path,
    out: W,
    excludes: &Excludes,
    progress: &(dyn Fn(u64) -> io::Result<()> + Sync),
) -> io::Result<(W, TreeReport)> {
    let meta = std::fs::symlink_metadata(root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut w = TreeWriter {
        builder: tar::Builder::new(out),
        owners: Owners::load(root),
        links: HashMap::new(),
        report: TreeReport::default(),
        root_dev: meta.dev(),
        progress,
    };
    // Depth-first, children sorted by name: deterministic archives.
    let (walked, excluded) = walk_excluding(root, &mut w, excludes);
    walked?;
    w.report.excluded = excluded;
    let mut builder = w.builder;
    builder.finish()?;
    Ok((builder.into_inner()?, w.report))
}

fn lossy(b: &[u8]) -> String {
    escape(b)
}

struct TreeWriter<'p, W: Write> {
    builder: tar::Builder<W>,
    owners: Owners,
    /// (dev, ino) of files with several links → name of the first one written.
    links: HashMap<(u64, u64), Vec<u8>>,
    report: TreeReport,
    root_dev: u64,
    progress: &'p (dyn Fn(u64) -> io::Result<()> + Sync),
}

impl<W: Write> Visitor for TreeWriter<'_, W> {
    fn visit(&mut self, e: &Entry<'_>) -> io::Result<bool> {
        // The root is `./`, everything else `./a/b`.
        let name: &[u8] = if e.rel == b"." { b"./" } else { e.rel };
        let written = self.entry(e, name)?;
        if !written || !e.meta.is_dir() {
            return Ok(false);
        }
        if e.rel != b"." && (e.meta.dev != self.root_dev || e.meta.mount_root) {
            self.report.warnings.push(format!(
                "{}: mount point of another file system, not descended",
                lossy(name)
            ));
            return Ok(false);
        }
        Ok(true)
    }

    fn problem(&mut self, rel: &[u8], what: &str, error: &io::Error) {
        self.warn(rel, what, error);
    }
}

impl<W: Write> TreeWriter<'_, W> {
    fn warn(&mut self, name: &[u8], what: &str, e: &dyn std::fmt::Display) {
        self.report.unreadable += 1;
        self.report
            .warnings
            .push(format!("{}: {what}: {e}", lossy(name)));
    }

    /// Writes one entry; returns whether it was written.
    fn entry(&mut self, e: &Entry<'_>, name: &[u8]) -> io::Result<bool> {
        let meta = e.meta;
        if meta.kind == Kind::Socket {
            self.report.skipped_sockets.push(lossy(name));
            return Ok(false);
        }
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut header = Header::new_ustar();
        header.set_mode(meta.mode);
        set_ids(&mut header, &mut pax, meta, &self.owners)?;
        header.set_mtime(meta.mtime.sec.max(0) as u64);
        pax.push(("mtime".into(), meta.mtime.to_pax().into_bytes()));
        match e.xattrs() {
            Ok(attrs) => {
                for (k, v) in attrs {
                    if k == acl::XATTR_ACCESS || k == acl::XATTR_DEFAULT {
                        if let Some(text) = acl::to_text(&v) {
                            let key = if k == acl::XATTR_ACCESS {
                                "SCHILY.acl.access"
                            } else {
                                "SCHILY.acl.default"
                            };
                            pax.push((key.into(), text.into_bytes()));
                        }
                    }
                    pax.push((format!("SCHILY.xattr.{k}"), v));
                }
            }
            Err(err) => {
                self.report
                    .warnings
                    .push(format!("{}: xattrs not read: {err}", lossy(name)));
            }
        }

        // Hardlinks: the second and later names of an inode are link entries.
        if !meta.is_dir() && meta.nlink > 1 {
            if let Some(first) = self.links.get(&(meta.dev, meta.ino)) {
                let first = first.clone();
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                set_link(&mut header, &mut pax, &first);
                return self.append(header, pax, name, io::empty()).map(|_| true);
            }
        }

        match meta.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                self.append(header, pax, name, io::empty())?;
            }
            Kind::Symlink => {
                let target = match e.read_link() {
                    Ok(t) => t,
                    Err(err) => {
                        self.warn(name, "cannot read symlink", &err);
                        return Ok(false);
                    }
                };
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                set_link(&mut header, &mut pax, target.as_bytes());
                self.append(header, pax, name, io::empty())?;
            }
            Kind::Fifo | Kind::Char | Kind::Block => {
                header.set_entry_type(match meta.kind {
                    Kind::Fifo => EntryType::Fifo,
                    Kind::Char => EntryType::Char,
                    _ => EntryType::Block,
                });
                header.set_size(0);
                if meta.kind != Kind::Fifo {
                    header.set_device_major(rustix::fs::major(meta.rdev))?;
                    header.set_device_minor(rustix::fs::minor(meta.rdev))?;
                }
                self.append(header, pax, name, io::empty())?;
            }
            Kind::File => {
                if !self.regular(e, name, header, pax)? {
                    return Ok(false);
                }
            }
            Kind::Socket => unreachable!("sockets are skipped above"),
        }
        if !meta.is_dir() && meta.nlink > 1 {
            self.links.insert((meta.dev, meta.ino), name.to_vec());
        }
        self.report.entries += 1;
        Ok(true)
    }

    fn regular(
        &mut self,
        e: &Entry<'_>,
        name: &[u8],
        mut header: Header,
        mut pax: Vec<(String, Vec<u8>)>,
    ) -> io::Result<bool> {
        let file = match e.open() {
            Ok(f) => f,
            Err(err) => {
                self.warn(name, "cannot open", &err);
                return Ok(false);
            }
        };
        let size = e.meta.size;
        header.set_entry_type(EntryType::Regular);
        let may_be_sparse = e.meta.blocks * 512 < size;
        let segments = if may_be_sparse {
            sparse::data_segments(&file, size).unwrap_or(None)
        } else {
            None
        };
        let errors = AtomicU64::new(0);
        let first_error = std::sync::Mutex::new(None::<String>);
        let progress = self.progress;
        let note = |e: io::Error| {
            errors.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut g) = first_error.lock() {
                g.get_or_insert_with(|| e.to_string());
            }
        };
        match segments {
            Some(segs) => {
                let map = sparse::encode_map(&segs);
                let data: u64 = segs.iter().map(|s| s.1).sum();
                let stored = map.len() as u64 + data;
                set_size(&mut header, &mut pax, stored);
                pax.push(("GNU.sparse.major".into(), b"1".to_vec()));
                pax.push(("GNU.sparse.minor".into(), b"0".to_vec()));
                pax.push(("GNU.sparse.name".into(), name.to_vec()));
                pax.push(("GNU.sparse.realsize".into(), size.to_string().into_bytes()));
                let base = name.rsplit(|&b| b == b'/').next().unwrap_or(b"f");
                let mut sparse_name = b"./GNUSparseFile.0/".to_vec();
                sparse_name.extend_from_slice(base);
                let reader = io::Cursor::new(map).chain(SparseData {
                    file,
                    segs,
                    idx: 0,
                    left: 0,
                    note: &note,
                    progress,
                });
                self.append_named(header, pax, &sparse_name, reader)?;
            }
            None => {
                set_size(&mut header, &mut pax, size);
                let reader = ExactReader {
                    inner: file,
                    left: size,
                    failed: false,
                    note: &note,
                    progress,
                };
                self.append(header, pax, name, reader)?;
            }
        }
        let n = errors.load(Ordering::Relaxed);
        if n > 0 {
            let first = first_error
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_default();
            self.warn(name, "read failed, stored zero-filled", &first);
        }
        self.report.bytes_read += size;
        Ok(true)
    }

    fn append(
        &mut self,
        header: Header,
        pax: Vec<(String, Vec<u8>)>,
        name: &[u8],
        data: impl Read,
    ) -> io::Result<()> {
        let mut pax = pax;
        if name.len() > NAME_LEN {
            pax.push(("path".into(), name.to_vec()));
        }
        self.append_named(header, pax, name, data)
    }

    fn append_named(
        &mut self,
        mut header: Header,
        pax: Vec<(String, Vec<u8>)>,
        name: &[u8],
        data: impl Read,
    ) -> io::Result<()> {
        let field = &mut header.as_old_mut().name;
        let n = name.len().min(NAME_LEN);
        field[..n].copy_from_slice(&name[..n]);
        header.set_cksum();
        self.builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        self.builder.append(&header, data)
    }
}

fn set_ids(
    header: &mut Header,
    pax: &mut Vec<(String, Vec<u8>)>,
    meta: &Meta,
    owners: &Owners,
) -> io::Result<()> {
    let (uid, gid) = (u64::from(meta.uid), u64::from(meta.gid));
    // Large values go into the header base-256 (GNU) and into pax records.
    header.set_uid(uid);
    header.set_gid(gid);
    if uid > MAX_ID {
        pax.push(("uid".into(), uid.to_string().into_bytes()));
    }
    if gid > MAX_ID {
        pax.push(("gid".into(), gid.to_string().into_bytes()));
    }
    if let Some(u) = owners.user(meta.uid) {
        header.set_username(u)?;
    }
    if let Some(g) = owners.group(meta.gid) {
        header.set_groupname(g)?;
    }
    Ok(())
}

fn set_size(header: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, size: u64) {
    header.set_size(size);
    if size > MAX_SIZE {
        pax.push(("size".into(), size.to_string().into_bytes()));
    }
}

fn set_link(header: &mut Header, pax: &mut Vec<(String, Vec<u8>)>, target: &[u8]) {
    let field = &mut header.as_old_mut().linkname;
    if target.len() <= field.len() {
        field[..target.len()].copy_from_slice(target);
    } else {
        pax.push(("linkpath".into(), target.to_vec()));
    }
}

/// Yields exactly `left` bytes of `inner`: a short read or an error pads with
/// zeros (and is noted), so the archive stays well-formed.
struct ExactReader<'a, R: Read> {
    inner: R,
    left: u64,
    failed: bool,
    note: &'a dyn Fn(io::Error),
    progress: &'a (dyn Fn(u64) -> io::Result<()> + Sync),
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = if self.failed {
            0
        } else {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    (self.note)(e);
                    self.failed = true;
                    0
                }
            }
        };
        let n = if n == 0 {
            if !self.failed {
                (self.note)(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being read",
                ));
                self.failed = true;
            }
            buf[..want].fill(0);
            want
        } else {
            // The progress callback is also where a cancelled run stops.
            (self.progress)(n as u64)?;
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// The data segments of a sparse file, one after the other.
struct SparseData<'a> {
    file: File,
    segs: Vec<sparse::Segment>,
    idx: usize,
    left: u64,
    note: &'a dyn Fn(io::Error),
    progress: &'a (dyn Fn(u64) -> io::Result<()> + Sync),
}

impl Read for SparseData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            let Some(&(off, len)) = self.segs.get(self.idx) else {
                return Ok(0);
            };
            self.idx += 1;
            self.left = len;
            if len > 0 {
                if let Err(e) = self.file.seek(SeekFrom::Start(off)) {
                    (self.note)(e);
                }
            }
        }
        let mut r = ExactReader {
            inner: &self.file,
            left: self.left,
            failed: false,
            note: self.note,
            progress: self.progress,
        };
        let n = r.read(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_reader_pads_after_error() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("EIO"))
            }
        }
        let count = std::cell::Cell::new(0);
        let note = |_e: io::Error| count.set(count.get() + 1);
        let mut r = ExactReader {
            inner: Failing,
            left: 1000,
            failed: false,
            note: &note,
            progress: &|_| Ok(()),
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![0u8; 1000]);
        assert_eq!(count.get(), 1);
    }

    #[test]
    fn tree_with_long_names_reads_back_with_tar_crate() {
        let d = tempfile::tempdir().unwrap();
        let long = "x".repeat(150);
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("dir").join(&long), b"hello").unwrap();
        std::os::unix::fs::symlink("y".repeat(120), d.path().join("link")).unwrap();
        let (buf, rep) = write_tree(d.path(), Vec::new(), &Excludes::none(), &|_| Ok(())).unwrap();
        assert_eq!(rep.entries, 4);
        let mut a = tar::Archive::new(&buf[..]);
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                "./".to_string(),
                "./dir".into(),
                format!("./dir/{long}"),
                "./link".into()
            ]
        );
    }
}
