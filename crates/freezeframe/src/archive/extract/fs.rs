//! The extractor's file system side: folders opened one component at a
//! time beneath the target with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, entries created, owned, timed and given xattrs
//! relative to their parent's descriptor, never followed.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};

use super::ExtractReport;
use crate::archive::read::EntryInfo;
use crate::sys::shown::escape;

pub(super) enum ParentError {
    Symlink,
    Escapes,
    Io(io::Error),
}

pub(super) struct Extractor {
    pub(super) root: OwnedFd,
    pub(super) target: PathBuf,
    /// The parent folder opened last, by its components: consecutive
    /// entries mostly share one. Dropped whenever anything is removed.
    pub(super) last_parent: std::cell::RefCell<Option<(Vec<std::ffi::OsString>, OwnedFd)>>,
}

impl Extractor {
    /// A directory `rel` beneath the target, opened one component at a
    /// time (any depth) without following any symlink.
    pub(super) fn open_dir(&self, rel: &Path) -> Result<OwnedFd, ParentError> {
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
    pub(super) fn open_parent(&self, parents: &[&OsStr]) -> Result<OwnedFd, ParentError> {
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
    pub(super) fn walk_to(&self, comps: &[&OsStr], create: bool) -> Result<OwnedFd, ParentError> {
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
    pub(super) fn resolve_in(
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
    pub(super) fn clear(&self, parent: &OwnedFd, name: &OsStr, want_dir: bool) -> io::Result<()> {
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

    pub(super) fn chown(
        &self,
        dir: &impl AsFd,
        name: Option<&OsStr>,
        uid: u64,
        gid: u64,
    ) -> io::Result<()> {
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

    pub(super) fn set_times(&self, parent: &OwnedFd, name: &OsStr, t: Timespec) -> io::Result<()> {
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
    pub(super) fn set_xattrs(
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
                    .map(|n| escape(std::os::unix::ffi::OsStrExt::as_bytes(n)))
                    .unwrap_or_else(|| ".".into());
                report.warnings.push(format!(
                    "{}/{what}: xattr {k} not restored: {e}",
                    self.target.display()
                ));
            }
        }
    }
}

pub(super) fn classify(e: rustix::io::Errno) -> ParentError {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => ParentError::Symlink,
        rustix::io::Errno::XDEV => ParentError::Escapes,
        e => ParentError::Io(e.into()),
    }
}
