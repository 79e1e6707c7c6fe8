//! Extracting a tar stream into a directory without ever leaving it.
//!
//! Every path is checked (no absolute paths, no `..`), and every parent
//! directory is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! so the kernel itself refuses to resolve a path that would leave the target
//! or pass through a symlink — including one the archive created earlier.
//! Entries are created relative to their parent's descriptor and never
//! followed. Owners are restored numerically.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use tar::EntryType;

use super::{acl, pax, sparse};
use crate::sys::time::Timestamp;

/// Extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The archive tries to write outside the target or through a symlink.
    #[error("refusing archive entry `{path}`: {reason}; nothing is written outside {target}")]
    Hostile {
        /// The entry's path as stored.
        path: String,
        /// What is wrong with it.
        reason: String,
        /// The target directory.
        target: PathBuf,
    },
    /// Reading the archive or writing the tree failed.
    #[error("restoring `{path}`: {source}")]
    Io {
        /// The entry being restored.
        path: String,
        /// The error.
        source: io::Error,
    },
}

/// What extraction did.
#[derive(Debug, Default, Clone)]
pub struct ExtractReport {
    /// Entries restored.
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Problems that did not stop the restore (e.g. an xattr the file system refused).
    pub warnings: Vec<String>,
}

/// A checked relative path: its normal components.
fn components(raw: &[u8]) -> Result<Vec<&OsStr>, String> {
    if raw.is_empty() {
        return Err("empty path".into());
    }
    if raw.contains(&0) {
        return Err("NUL byte in path".into());
    }
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
            Component::ParentDir => return Err("`..` in path".into()),
        }
    }
    Ok(out)
}

fn errno_io(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// Metadata applied to directories after their contents, so that a default
/// ACL is not inherited by entries that never had it and a read-only
/// directory does not block its own restore.
struct DirMeta {
    rel: PathBuf,
    mode: u32,
    mtime: Timespec,
    uid: u64,
    gid: u64,
    info: EntryInfo,
}

/// Extracts the tar stream `src` into `target`, which must exist.
/// `after_entry` is called with the number of entries restored so far; an
/// error from it (a cancelled restore) stops the extraction.
pub fn extract(
    src: impl Read,
    target: &Path,
    after_entry: &dyn Fn(u64) -> io::Result<()>,
) -> Result<ExtractReport, ExtractError> {
    let io_err = |path: &str| {
        let path = path.to_owned();
        move |source: io::Error| ExtractError::Io {
            path: path.clone(),
            source,
        }
    };
    let root = rustix::fs::open(
        target,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(&target.display().to_string())(e.into()))?;
    let x = Extractor {
        root,
        target: target.to_owned(),
        last_parent: std::cell::RefCell::new(None),
    };
    let mut report = ExtractReport::default();
    let mut dirs: Vec<DirMeta> = Vec::new();
    let mut archive = tar::Archive::new(src);
    let entries = archive.entries().map_err(io_err("<archive>"))?.raw(true);
    let mut pending = EntryInfo::default();
    for entry in entries {
        let mut entry = entry.map_err(io_err("<archive>"))?;
        match entry.header().entry_type() {
            EntryType::XHeader => {
                let data = read_meta(&mut entry).map_err(io_err("<pax header>"))?;
                for (k, v) in pax::parse(&data).map_err(io_err("<pax header>"))? {
                    pending.absorb(&k, &v);
                }
                continue;
            }
            EntryType::XGlobalHeader => continue,
            EntryType::GNULongName => {
                let mut d = read_meta(&mut entry).map_err(io_err("<long name>"))?;
                d.truncate(d.iter().position(|&b| b == 0).unwrap_or(d.len()));
                pending.path = Some(d);
                continue;
            }
            EntryType::GNULongLink => {
                let mut d = read_meta(&mut entry).map_err(io_err("<long link>"))?;
                d.truncate(d.iter().position(|&b| b == 0).unwrap_or(d.len()));
                pending.linkpath = Some(d);
                continue;
            }
            _ => {}
        }
        let info = std::mem::take(&mut pending);
        let path_bytes = match (&info.sparse_name, &info.path) {
            (Some(p), _) | (None, Some(p)) => p.clone(),
            _ => entry.header().path_bytes().into_owned(),
        };
        let link_bytes = match &info.linkpath {
            Some(l) => Some(l.clone()),
            None => entry.header().link_name_bytes().map(|c| c.into_owned()),
        };
        let shown = String::from_utf8_lossy(&path_bytes).into_owned();
        let hostile = |reason: String| ExtractError::Hostile {
            path: shown.clone(),
            reason,
            target: target.to_owned(),
        };
        let comps = components(&path_bytes).map_err(hostile)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().map_err(io_err(&shown))?;
        let uid = match info.uid {
            Some(u) => u,
            None => header.uid().map_err(io_err(&shown))?,
        };
        let gid = match info.gid {
            Some(g) => g,
            None => header.gid().map_err(io_err(&shown))?,
        };
        let mtime = info.mtime.unwrap_or(Timespec {
            tv_sec: header.mtime().map_err(io_err(&shown))? as i64,
            tv_nsec: 0,
        });
        if comps.is_empty() {
            // The root itself ("./"): only its metadata.
            if kind == EntryType::Directory {
                dirs.push(DirMeta {
                    rel: PathBuf::new(),
                    mode,
                    mtime,
                    uid,
                    gid,
                    info,
                });
            }
            continue;
        }
        let rel: PathBuf = comps.iter().collect();
        let (name, parents) = comps
            .split_last()
            .ok_or_else(|| hostile("empty path".into()))?;
        let parent = x.open_parent(parents).map_err(|e| match e {
            ParentError::Symlink => hostile(
                "a parent directory is a symlink; writes through symlinks are refused".into(),
            ),
            ParentError::Escapes => hostile("the path leaves the target".into()),
            ParentError::Io(e) => ExtractError::Io {
                path: shown.clone(),
                source: e,
            },
        })?;
        x.clear(&parent, name, kind == EntryType::Directory)
            .map_err(io_err(&shown))?;
        match kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_err(&shown)(errno_io(e))),
                }
                dirs.push(DirMeta {
                    rel: rel.clone(),
                    mode,
                    mtime,
                    uid,
                    gid,
                    info,
                });
                report.entries += 1;
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    *name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err(&shown)(errno_io(e)))?;
                let mut file = File::from(fd);
                let n = match info.sparse_realsize {
                    Some(real) => write_sparse(&mut entry, &mut file, real),
                    None => io::copy(&mut entry, &mut file),
                }
                .map_err(io_err(&shown))?;
                report.bytes += n;
                x.chown(&file, None, uid, gid).map_err(io_err(&shown))?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode & 0o7777))
                    .map_err(|e| io_err(&shown)(errno_io(e)))?;
                x.set_xattrs(&parent, Some(name), &info, &mut report);
                x.set_times(&parent, name, mtime).map_err(io_err(&shown))?;
            }
            EntryType::Symlink => {
                let target_bytes = link_bytes
                    .clone()
                    .ok_or_else(|| hostile("symlink without a target".into()))?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target_bytes), &parent, *name)
                    .map_err(|e| io_err(&shown)(errno_io(e)))?;
                x.chown(&parent, Some(name), uid, gid)
                    .map_err(io_err(&shown))?;
                x.set_xattrs(&parent, Some(name), &info, &mut report);
                x.set_times(&parent, name, mtime).map_err(io_err(&shown))?;
            }
            EntryType::Link => {
                let target_bytes = link_bytes
                    .clone()
                    .ok_or_else(|| hostile("hardlink without a target".into()))?;
                let tcomps = components(&target_bytes)
                    .map_err(|r| hostile(format!("hardlink target: {r}")))?;
                let (tname, tparents) = tcomps
                    .split_last()
                    .ok_or_else(|| hostile("hardlink to the target root".into()))?;
                let tparent = x.open_parent(tparents).map_err(|_| {
                    hostile("hardlink target is outside the target or behind a symlink".into())
                })?;
                rustix::fs::linkat(&tparent, *tname, &parent, *name, AtFlags::empty())
                    .map_err(|e| io_err(&shown)(errno_io(e)))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    &parent,
                    *name,
                    ft,
                    Mode::from_raw_mode(mode & 0o7777),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| io_err(&shown)(errno_io(e)))?;
                x.chown(&parent, Some(name), uid, gid)
                    .map_err(io_err(&shown))?;
                rustix::fs::chmodat(
                    &parent,
                    *name,
                    Mode::from_raw_mode(mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(|e| io_err(&shown)(errno_io(e)))?;
                x.set_xattrs(&parent, Some(name), &info, &mut report);
                x.set_times(&parent, name, mtime).map_err(io_err(&shown))?;
            }
            EntryType::XGlobalHeader => continue,
            other => {
                report.warnings.push(format!(
                    "{shown}: entry type {other:?} not supported, skipped"
                ));
                continue;
            }
        }
        report.entries += 1;
        after_entry(report.entries).map_err(io_err(&shown))?;
    }
    // Directory modes and mtimes last, deepest first: children are in place
    // and a read-only directory no longer blocks them.
    for d in dirs.iter().rev() {
        let shown = d.rel.display().to_string();
        let fd = if d.rel.as_os_str().is_empty() {
            rustix::io::dup(&x.root).map_err(|e| io_err(&shown)(errno_io(e)))?
        } else {
            x.open_dir(&d.rel).map_err(|e| {
                io_err(&shown)(match e {
                    ParentError::Io(e) => {
                        io::Error::new(e.kind(), format!("directory vanished: {e}"))
                    }
                    _ => io::Error::other("directory vanished or replaced by a symlink"),
                })
            })?
        };
        x.chown(&fd, None, d.uid, d.gid).map_err(io_err(&shown))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode & 0o7777))
            .map_err(|e| io_err(&shown)(errno_io(e)))?;
        x.set_xattrs(&fd, None, &d.info, &mut report);
        rustix::fs::futimens(
            &fd,
            &Timestamps {
                last_access: d.mtime,
                last_modification: d.mtime,
            },
        )
        .map_err(|e| io_err(&shown)(errno_io(e)))?;
    }
    Ok(report)
}

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
#[derive(Default)]
struct EntryInfo {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<Timespec>,
    xattrs: Vec<(String, Vec<u8>)>,
    acl_access: Option<String>,
    acl_default: Option<String>,
    sparse_name: Option<Vec<u8>>,
    sparse_realsize: Option<u64>,
}

impl EntryInfo {
    fn absorb(&mut self, key: &str, value: &[u8]) {
        let text = || std::str::from_utf8(value).ok();
        match key {
            "path" => self.path = Some(value.to_vec()),
            "linkpath" => self.linkpath = Some(value.to_vec()),
            "uid" => self.uid = text().and_then(|t| t.parse().ok()),
            "gid" => self.gid = text().and_then(|t| t.parse().ok()),
            "mtime" => self.mtime = text().and_then(parse_pax_time),
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

    /// Every xattr to set: the stored ones, plus ACLs given only as text.
    fn all_xattrs(&self) -> Vec<(String, Vec<u8>)> {
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
        // capabilities last: a later chown/xattr would not clear them.
        out.sort_by_key(|(k, _)| k == "security.capability");
        out
    }
}

/// Parses a pax time (`1700000000.123456789`, possibly negative) into
/// the normalised form `utimensat` takes.
pub fn parse_pax_time(s: &str) -> Option<Timespec> {
    Timestamp::parse_pax(s).map(|t| Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec),
    })
}

fn write_sparse(entry: &mut impl Read, file: &mut File, realsize: u64) -> io::Result<u64> {
    let (segs, _) = sparse::decode_map(entry)?;
    let mut written = 0;
    for (off, len) in segs {
        if off.checked_add(len).is_none_or(|end| end > realsize) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sparse segment beyond the file size",
            ));
        }
        file.seek(SeekFrom::Start(off))?;
        let n = io::copy(&mut entry.take(len), file)?;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "sparse data cut short",
            ));
        }
        written += n;
    }
    file.set_len(realsize)?;
    file.flush()?;
    Ok(written)
}

enum ParentError {
    Symlink,
    Escapes,
    Io(io::Error),
}

struct Extractor {
    root: OwnedFd,
    target: PathBuf,
    /// The parent folder opened last, by its components: consecutive
    /// entries mostly share one. Dropped whenever anything is removed.
    last_parent: std::cell::RefCell<Option<(Vec<std::ffi::OsString>, OwnedFd)>>,
}

impl Extractor {
    /// A directory `rel` beneath the target, opened one component at a
    /// time (any depth) without following any symlink.
    fn open_dir(&self, rel: &Path) -> Result<OwnedFd, ParentError> {
        let comps: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        self.walk_to(&comps, false)
    }

    /// Opens (creating as needed) the parent directories, refusing symlinks.
    fn open_parent(&self, parents: &[&OsStr]) -> Result<OwnedFd, ParentError> {
        if let Some((comps, fd)) = self.last_parent.borrow().as_ref() {
            if comps.len() == parents.len() && comps.iter().zip(parents).all(|(a, b)| a == b) {
                return rustix::io::dup(fd).map_err(|e| ParentError::Io(e.into()));
            }
        }
        let fd = self.walk_to(parents, true)?;
        let keep = rustix::io::dup(&fd).map_err(|e| ParentError::Io(e.into()))?;
        *self.last_parent.borrow_mut() =
            Some((parents.iter().map(|c| c.to_os_string()).collect(), keep));
        Ok(fd)
    }

    /// Opens `comps` beneath the target one at a time, creating missing
    /// folders if `create`: any depth, never through a symlink.
    fn walk_to(&self, comps: &[&OsStr], create: bool) -> Result<OwnedFd, ParentError> {
        let mut fd = rustix::io::dup(&self.root).map_err(|e| ParentError::Io(e.into()))?;
        for c in comps {
            let next = match Self::resolve_in(&fd, *c) {
                Ok(f) => f,
                Err(rustix::io::Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&fd, *c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(ParentError::Io(e.into())),
                    }
                    Self::resolve_in(&fd, *c).map_err(classify)?
                }
                Err(e) => return Err(classify(e)),
            };
            fd = next;
        }
        Ok(fd)
    }

    /// Opens directory `path` beneath `dir`: the kernel refuses to leave
    /// `dir` or to pass through a symlink.
    fn resolve_in(
        dir: &OwnedFd,
        path: impl rustix::path::Arg,
    ) -> Result<OwnedFd, rustix::io::Errno> {
        rustix::fs::openat2(
            dir,
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )
    }

    /// Removes whatever stands at `name`, unless it is a directory and a
    /// directory is wanted (then it is reused).
    fn clear(&self, parent: &OwnedFd, name: &OsStr, want_dir: bool) -> io::Result<()> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
            Ok(st) => {
                let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory;
                if is_dir && want_dir {
                    return Ok(());
                }
                // The tree changes shape: a cached parent may be what goes.
                self.last_parent.borrow_mut().take();
                let flags = if is_dir {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                rustix::fs::unlinkat(parent, name, flags).map_err(|e| {
                    io::Error::new(
                        io::Error::from(e).kind(),
                        format!(
                            "cannot replace existing entry: {e} (is it a non-empty directory?)"
                        ),
                    )
                })
            }
        }
    }

    fn chown(&self, dir: &impl AsFd, name: Option<&OsStr>, uid: u64, gid: u64) -> io::Result<()> {
        let (u, g) = (
            rustix::fs::Uid::from_raw(uid as u32),
            rustix::fs::Gid::from_raw(gid as u32),
        );
        match name {
            Some(n) => rustix::fs::chownat(dir, n, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)?,
            None => rustix::fs::fchown(dir, Some(u), Some(g))?,
        }
        Ok(())
    }

    fn set_times(&self, parent: &OwnedFd, name: &OsStr, t: Timespec) -> io::Result<()> {
        rustix::fs::utimensat(
            parent,
            name,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Sets the entry's xattrs through `/proc/self/fd/<dir>/<name>` with
    /// `lsetxattr`: the directory is ours, and the final name is not followed.
    fn set_xattrs(
        &self,
        dir: &impl AsFd,
        name: Option<&OsStr>,
        info: &EntryInfo,
        report: &mut ExtractReport,
    ) {
        let attrs = info.all_xattrs();
        if attrs.is_empty() {
            return;
        }
        use std::os::fd::AsRawFd;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()));
        if let Some(n) = name {
            p.push(n);
        }
        for (k, v) in attrs {
            let r = if name.is_some() {
                rustix::fs::lsetxattr(&p, k.as_str(), &v, rustix::fs::XattrFlags::empty())
            } else {
                rustix::fs::fsetxattr(dir, k.as_str(), &v, rustix::fs::XattrFlags::empty())
            };
            if let Err(e) = r {
                let what = name
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| ".".into());
                report.warnings.push(format!(
                    "{}/{what}: xattr {k} not restored: {e}",
                    self.target.display()
                ));
            }
        }
    }
}

fn classify(e: rustix::io::Errno) -> ParentError {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => ParentError::Symlink,
        rustix::io::Errno::XDEV => ParentError::Escapes,
        e => ParentError::Io(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_checks() {
        assert!(components(b"./a/b").is_ok());
        assert_eq!(components(b"./").unwrap().len(), 0);
        assert!(components(b"../x").unwrap_err().contains(".."));
        assert!(components(b"a/../../x").is_err());
        assert!(components(b"/abs").unwrap_err().contains("absolute"));
        assert!(components(b"").is_err());
    }

    #[test]
    fn pax_time_parsing() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time("-1.500000000").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
        let t = parse_pax_time("42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(parse_pax_time("x").is_none());
        assert!(parse_pax_time("-1.-500000000").is_none());
    }

    fn tar_with(entries: &[(&str, EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, link, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn refuses_dotdot_absolute_and_symlink_traversal() {
        let outer = tempfile::tempdir().unwrap();
        let target = outer.path().join("t");
        std::fs::create_dir(&target).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            tar_with(&[("../escape", EntryType::Regular, "", b"x")]),
            tar_with(&[("/tmp/ff-abs-escape", EntryType::Regular, "", b"x")]),
            tar_with(&[
                (
                    "link",
                    EntryType::Symlink,
                    outer.path().to_str().unwrap(),
                    b"",
                ),
                ("link/escape", EntryType::Regular, "", b"x"),
            ]),
            tar_with(&[
                ("rel", EntryType::Symlink, "..", b""),
                ("rel/escape", EntryType::Regular, "", b"x"),
            ]),
            tar_with(&[("hl", EntryType::Link, "../outside", b"")]),
        ];
        for (i, t) in cases.iter().enumerate() {
            let err = extract(&t[..], &target, &|_| Ok(())).unwrap_err();
            assert!(
                matches!(err, ExtractError::Hostile { .. }),
                "case {i}: {err}"
            );
            assert!(!outer.path().join("escape").exists(), "case {i}");
            assert!(!Path::new("/tmp/ff-abs-escape").exists());
        }
        let msg = extract(&cases[2][..], &target, &|_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("symlink"), "{msg}");
    }
}
