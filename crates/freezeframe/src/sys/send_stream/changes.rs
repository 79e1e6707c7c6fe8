//! What an incremental send stream says changed, per file of the new
//! snapshot. The stream names files by their path *at that point of the
//! stream*: new files are made under temporary names and renamed later,
//! folders are renamed with everything below them. So the commands are
//! replayed over a model of the tree's names, and each file ends up under
//! its path in the new snapshot, with the path it had in the base (none
//! when the stream made it).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::wire::{attr, cmd, Command};
use super::{FileChange, SendChanges, StreamError};

/// The tree's names as the stream goes.
#[derive(Default)]
struct Names {
    objects: Vec<FileChange>,
    /// Current path → object.
    at: BTreeMap<PathBuf, usize>,
}

impl Names {
    /// The object at `path`, met for the first time if need be: then it
    /// was in the base, where its path was `path` with the nearest moved
    /// folder above it put back where it was (none below a new folder).
    fn resolve(&mut self, path: &Path) -> usize {
        if let Some(&i) = self.at.get(path) {
            return i;
        }
        let origin = path
            .ancestors()
            .skip(1)
            .find_map(|a| self.at.get(a).map(|&i| (a, i)))
            .map_or(Some(path.to_owned()), |(a, i)| {
                let rest = path.strip_prefix(a).unwrap_or(path);
                self.objects[i].origin.as_ref().map(|o| o.join(rest))
            });
        self.add(
            path,
            FileChange {
                origin,
                ..FileChange::default()
            },
        )
    }

    /// A new object at `path` (replacing whatever name was there).
    fn add(&mut self, path: &Path, o: FileChange) -> usize {
        self.objects.push(o);
        let i = self.objects.len() - 1;
        self.at.insert(path.to_owned(), i);
        i
    }

    /// `from` and everything named below it move to `to`.
    fn rename(&mut self, from: &Path, to: &Path) {
        let i = self.resolve(from);
        self.at.remove(from);
        let below: Vec<PathBuf> = self
            .at
            .range(from.to_owned()..)
            .take_while(|(p, _)| p.starts_with(from))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            if let Some(j) = self.at.remove(&p) {
                let rest = p.strip_prefix(from).unwrap_or(&p);
                self.at.insert(to.join(rest), j);
            }
        }
        self.at.insert(to.to_owned(), i);
        self.objects[i].renamed = true;
    }

    /// `path` is gone (unlinked or removed).
    fn remove(&mut self, path: &Path) {
        let i = self.resolve(path);
        self.objects[i].linked = true;
        self.at.remove(path);
    }
}

/// Replays `cmds` (after the `SNAPSHOT` command that opens an incremental
/// stream) into the changes of each file.
pub(crate) fn replay(cmds: &[Command<'_>]) -> Result<SendChanges, StreamError> {
    let first = cmds.first().ok_or(StreamError::NoEnd)?;
    match first.kind {
        cmd::SNAPSHOT => {}
        // A full stream starts with the subvolume it makes.
        cmd::SUBVOL => return Err(StreamError::NotIncremental),
        command => {
            return Err(StreamError::UnknownCommand {
                command,
                offset: first.offset,
            })
        }
    }
    let mut out = SendChanges {
        uuid: first.uuid(attr::UUID)?,
        ctransid: first.u64(attr::CTRANSID)?,
        base_uuid: first.uuid(attr::CLONE_UUID)?,
        base_ctransid: first.u64(attr::CLONE_CTRANSID)?,
        entries: BTreeMap::new(),
    };
    let mut names = Names::default();
    for c in &cmds[1..] {
        apply(&mut names, c)?;
    }
    for (path, i) in names.at {
        out.entries.insert(path, names.objects[i].clone());
    }
    Ok(out)
}

fn path_of(c: &Command<'_>, a: u16) -> Result<PathBuf, StreamError> {
    Ok(PathBuf::from(OsStr::from_bytes(c.path(a)?)))
}

/// One command's effect on the names and changes.
fn apply(names: &mut Names, c: &Command<'_>) -> Result<(), StreamError> {
    match c.kind {
        cmd::MKFILE | cmd::MKDIR | cmd::MKNOD | cmd::MKFIFO | cmd::MKSOCK | cmd::SYMLINK => {
            names.add(&path_of(c, attr::PATH)?, FileChange::default());
        }
        cmd::RENAME => names.rename(&path_of(c, attr::PATH)?, &path_of(c, attr::PATH_TO)?),
        cmd::LINK => {
            let target = names.resolve(&path_of(c, attr::PATH_LINK)?);
            names.objects[target].linked = true;
            let link = FileChange {
                linked: true,
                ..FileChange::default()
            };
            names.add(&path_of(c, attr::PATH)?, link);
        }
        cmd::UNLINK | cmd::RMDIR => names.remove(&path_of(c, attr::PATH)?),
        cmd::SET_XATTR
        | cmd::REMOVE_XATTR
        | cmd::CHMOD
        | cmd::CHOWN
        | cmd::UTIMES
        | cmd::FILEATTR
        | cmd::ENABLE_VERITY => {
            let i = names.resolve(&path_of(c, attr::PATH)?);
            names.objects[i].metadata = true;
        }
        cmd::WRITE | cmd::UPDATE_EXTENT | cmd::CLONE | cmd::FALLOCATE | cmd::ENCODED_WRITE => {
            let offset = c.u64(attr::FILE_OFFSET)?;
            let len = match c.kind {
                cmd::WRITE => c.get(attr::DATA)?.len() as u64,
                cmd::CLONE => c.u64(attr::CLONE_LEN)?,
                cmd::ENCODED_WRITE => c.u64(attr::UNENCODED_FILE_LEN)?,
                _ => c.u64(attr::SIZE)?,
            };
            let end = offset.checked_add(len).ok_or(StreamError::BadAttribute {
                command: c.kind,
                attribute: attr::SIZE,
                offset: c.offset,
            })?;
            let i = names.resolve(&path_of(c, attr::PATH)?);
            names.objects[i].add_range(offset, end);
        }
        cmd::TRUNCATE => {
            let size = c.u64(attr::SIZE)?;
            let i = names.resolve(&path_of(c, attr::PATH)?);
            names.objects[i].truncated = Some(size);
        }
        cmd::END => {}
        // A second SUBVOL/SNAPSHOT (several streams back to back) or a
        // command of a later version: not a stream this model knows.
        other => {
            return Err(StreamError::UnknownCommand {
                command: other,
                offset: c.offset,
            })
        }
    }
    Ok(())
}
