//! Extracting a tar stream into a directory without ever leaving it.
//!
//! Every path is checked (no absolute paths, no `..`), and every parent
//! directory is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! so the kernel itself refuses to resolve a path that would leave the target
//! or pass through a symlink — including one the archive created earlier.
//! Entries are created relative to their parent's descriptor and never
//! followed (`fs.rs`). Owners are restored numerically. A [`Selector`]
//! restores only part of a stream.

mod fs;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use tar::EntryType;

use self::fs::{Extractor, ParentError};
use super::read::{for_each, EntryInfo, Flow, Resolved};
use super::sparse;
use crate::sys::shown::{escape, escape_path};
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
    /// What was selected cannot be restored as asked.
    #[error("{0}")]
    Selection(String),
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

/// What to do with one entry of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Restore it where it is.
    Restore,
    /// A folder on the way to what is restored: create it, with its
    /// metadata, and nothing else of it.
    Ancestor,
    /// Restore this regular file under another stored path instead (the
    /// first name of a hardlink outside the selection, given to a name
    /// inside it).
    As(Vec<u8>),
    /// Restore this hardlink, but pointing at another stored path.
    LinkTo(Vec<u8>),
    /// Leave it out.
    Skip,
}

/// Chooses what of a stream is restored.
pub trait Selector {
    /// The fate of the entry at stored `path` of type `kind` (a link's
    /// target in `link`). The extractor still checks the entry: a selector
    /// only chooses.
    fn pick(&mut self, path: &[u8], kind: EntryType, link: Option<&[u8]>) -> Pick;
}

/// Restores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Everything;

impl Selector for Everything {
    fn pick(&mut self, _: &[u8], _: EntryType, _: Option<&[u8]>) -> Pick {
        Pick::Restore
    }
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

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec),
    }
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
    extract_with(src, target, after_entry, &mut Everything)
}

/// [`extract`], restoring what `select` picks.
pub fn extract_with(
    src: impl Read,
    target: &Path,
    after_entry: &dyn Fn(u64) -> io::Result<()>,
    select: &mut dyn Selector,
) -> Result<ExtractReport, ExtractError> {
    let root = rustix::fs::open(
        target,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExtractError::Io {
        path: target.display().to_string(),
        source: e.into(),
    })?;
    let mut run = Run {
        x: Extractor {
            root,
            target: target.to_owned(),
            last_parent: std::cell::RefCell::new(None),
        },
        report: ExtractReport::default(),
        dirs: Vec::new(),
        failed: None,
    };
    let streamed = for_each(src, |e| {
        let before = run.report.entries;
        if let Err(err) = run.entry(e, select) {
            run.failed = Some(err);
            return Ok(Flow::Stop);
        }
        if run.report.entries > before {
            after_entry(run.report.entries)?;
        }
        Ok(Flow::Next)
    });
    if let Some(e) = run.failed.take() {
        return Err(e);
    }
    streamed.map_err(|source| ExtractError::Io {
        path: "<archive>".into(),
        source,
    })?;
    run.finish_dirs()?;
    Ok(run.report)
}

/// One extraction under way.
struct Run {
    x: Extractor,
    report: ExtractReport,
    dirs: Vec<DirMeta>,
    failed: Option<ExtractError>,
}

fn io_err(path: &str) -> impl Fn(io::Error) -> ExtractError + '_ {
    move |source| ExtractError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Run {
    fn hostile(&self, shown: &str, reason: String) -> ExtractError {
        ExtractError::Hostile {
            path: shown.to_owned(),
            reason,
            target: self.x.target.clone(),
        }
    }

    /// Restores one entry, as `select` picks it.
    fn entry<R: Read>(
        &mut self,
        e: &mut Resolved<'_, '_, R>,
        select: &mut dyn Selector,
    ) -> Result<(), ExtractError> {
        let shown = escape(&e.path);
        // Checked before the selector sees it: a hostile name is refused
        // whether or not it is selected.
        components(&e.path).map_err(|r| self.hostile(&shown, r))?;
        let pick = select.pick(&e.path, e.kind, e.link.as_deref());
        let (path, link) = match pick {
            Pick::Skip => return Ok(()),
            Pick::Ancestor if e.kind != EntryType::Directory => {
                return Err(ExtractError::Selection(format!(
                    "`{shown}` is on the way to what was asked for, but it is not a folder (a symlink?): refused"
                )))
            }
            Pick::Restore | Pick::Ancestor => (e.path.clone(), e.link.clone()),
            Pick::As(p) => (p, e.link.clone()),
            Pick::LinkTo(t) => (e.path.clone(), Some(t)),
        };
        let comps = components(&path).map_err(|r| self.hostile(&shown, r))?;
        let mtime = timespec(e.mtime);
        if comps.is_empty() {
            // The root itself ("./"): only its metadata.
            if e.kind == EntryType::Directory {
                self.dirs.push(DirMeta {
                    rel: PathBuf::new(),
                    mode: e.mode,
                    mtime,
                    uid: e.uid,
                    gid: e.gid,
                    info: e.info.clone(),
                });
            }
            return Ok(());
        }
        let (name, parents) = comps
            .split_last()
            .ok_or_else(|| self.hostile(&shown, "empty path".into()))?;
        let parent = self.x.open_parent(parents).map_err(|err| match err {
            ParentError::Symlink => self.hostile(
                &shown,
                "a parent directory is a symlink; writes through symlinks are refused".into(),
            ),
            ParentError::Escapes => self.hostile(&shown, "the path leaves the target".into()),
            ParentError::Io(err) => io_err(&shown)(err),
        })?;
        let x = &self.x;
        x.clear(&parent, name, e.kind == EntryType::Directory)
            .map_err(io_err(&shown))?;
        match e.kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(err) => return Err(io_err(&shown)(errno_io(err))),
                }
                self.dirs.push(DirMeta {
                    rel: comps.iter().collect(),
                    mode: e.mode,
                    mtime,
                    uid: e.uid,
                    gid: e.gid,
                    info: e.info.clone(),
                });
            }
            EntryType::Regular | EntryType::Continuous => {
                self.write_file(&parent, name, e, mtime)
                    .map_err(io_err(&shown))?;
            }
            EntryType::Symlink => {
                let target =
                    link.ok_or_else(|| self.hostile(&shown, "symlink without a target".into()))?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, *name)
                    .map_err(|err| io_err(&shown)(errno_io(err)))?;
                x.chown(&parent, Some(name), e.uid, e.gid)
                    .map_err(io_err(&shown))?;
                x.set_xattrs(&parent, Some(name), &e.info, &mut self.report);
                x.set_times(&parent, name, mtime).map_err(io_err(&shown))?;
            }
            EntryType::Link => self.hardlink(&parent, name, link, &shown)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.make_node(&parent, name, e, mtime)
                    .map_err(io_err(&shown))?;
            }
            other => {
                self.report.warnings.push(format!(
                    "{shown}: entry type {other:?} not supported, skipped"
                ));
                return Ok(());
            }
        }
        self.report.entries += 1;
        Ok(())
    }

    /// A regular file, its data (sparse or not), owner, mode, xattrs, mtime.
    fn write_file<R: Read>(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        e: &mut Resolved<'_, '_, R>,
        mtime: Timespec,
    ) -> io::Result<()> {
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut file = File::from(fd);
        self.report.bytes += match e.info.sparse_realsize {
            Some(real) => write_sparse(e.entry, &mut file, real),
            None => io::copy(e.entry, &mut file),
        }?;
        self.x.chown(&file, None, e.uid, e.gid)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(e.mode & 0o7777))?;
        self.x
            .set_xattrs(parent, Some(name), &e.info, &mut self.report);
        self.x.set_times(parent, name, mtime)
    }

    /// A hardlink to an entry already restored: its target, too, is
    /// checked component by component and reached without symlinks.
    fn hardlink(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        link: Option<Vec<u8>>,
        shown: &str,
    ) -> Result<(), ExtractError> {
        let target = link.ok_or_else(|| self.hostile(shown, "hardlink without a target".into()))?;
        let tcomps = components(&target)
            .map_err(|r| self.hostile(shown, format!("hardlink target: {r}")))?;
        let (tname, tparents) = tcomps
            .split_last()
            .ok_or_else(|| self.hostile(shown, "hardlink to the target root".into()))?;
        let tparent = self.x.open_parent(tparents).map_err(|_| {
            self.hostile(
                shown,
                "hardlink target is outside the target or behind a symlink".into(),
            )
        })?;
        rustix::fs::linkat(&tparent, *tname, parent, name, AtFlags::empty())
            .map_err(|err| io_err(shown)(errno_io(err)))
    }

    /// A device node or a FIFO, with owner, mode, xattrs and mtime.
    fn make_node<R: Read>(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        e: &Resolved<'_, '_, R>,
        mtime: Timespec,
    ) -> io::Result<()> {
        let ft = match e.kind {
            EntryType::Char => rustix::fs::FileType::CharacterDevice,
            EntryType::Block => rustix::fs::FileType::BlockDevice,
            _ => rustix::fs::FileType::Fifo,
        };
        let (major, minor) = e.device.unwrap_or((0, 0));
        let mode = Mode::from_raw_mode(e.mode & 0o7777);
        rustix::fs::mknodat(parent, name, ft, mode, rustix::fs::makedev(major, minor))?;
        self.x.chown(parent, Some(name), e.uid, e.gid)?;
        rustix::fs::chmodat(parent, name, mode, AtFlags::empty())?;
        self.x
            .set_xattrs(parent, Some(name), &e.info, &mut self.report);
        self.x.set_times(parent, name, mtime)
    }

    /// Directory modes and mtimes last, deepest first: children are in
    /// place and a read-only directory no longer blocks them.
    fn finish_dirs(&mut self) -> Result<(), ExtractError> {
        let dirs = std::mem::take(&mut self.dirs);
        let x = &self.x;
        for d in dirs.iter().rev() {
            let shown = escape_path(&d.rel);
            let fd = if d.rel.as_os_str().is_empty() {
                rustix::io::dup(&x.root).map_err(|err| io_err(&shown)(errno_io(err)))?
            } else {
                x.open_dir(&d.rel).map_err(|err| {
                    io_err(&shown)(match err {
                        ParentError::Io(err) => {
                            io::Error::new(err.kind(), format!("directory vanished: {err}"))
                        }
                        _ => io::Error::other("directory vanished or replaced by a symlink"),
                    })
                })?
            };
            x.chown(&fd, None, d.uid, d.gid).map_err(io_err(&shown))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(d.mode & 0o7777))
                .map_err(|err| io_err(&shown)(errno_io(err)))?;
            x.set_xattrs(&fd, None, &d.info, &mut self.report);
            rustix::fs::futimens(
                &fd,
                &Timestamps {
                    last_access: d.mtime,
                    last_modification: d.mtime,
                },
            )
            .map_err(|err| io_err(&shown)(errno_io(err)))?;
        }
        Ok(())
    }
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
        let p = |s| Timestamp::parse_pax(s).map(timespec);
        let t = p("1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = p("-1.500000000").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
        let t = p("42").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (42, 0));
        assert!(p("x").is_none());
        assert!(p("-1.-500000000").is_none());
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
