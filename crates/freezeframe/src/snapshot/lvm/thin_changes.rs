//! What changed between a kept thin base snapshot and a new one, per file
//! (DESIGN.md §7, LVM-thin): the pool says which blocks differ
//! (`thin_delta` over a reserved metadata snapshot), each changed file's
//! extents in both snapshots say which of its bytes lie in them.
//!
//! Only regular files whose size, times or inode differ are looked at:
//! the repository writer reuses the others whole from the parent, and
//! asks for ranges only of the files its own comparison calls changed.
//! A file missing here is read whole, never trusted.

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::delta::ThinDelta;
use super::file_ranges::changed_ranges;
use crate::sys::fiemap;
use crate::sys::send_stream::FileChange;
use crate::sys::shown::escape_path;
use crate::sys::Cmd;

/// `dmsetup message POOL 0 reserve_metadata_snap` (or release).
pub fn metadata_snap_cmd(tpool: &str, reserve: bool) -> Cmd {
    let what = if reserve {
        "reserve_metadata_snap"
    } else {
        "release_metadata_snap"
    };
    Cmd::new("dmsetup")
        .arg("message")
        .arg(tpool)
        .arg("0")
        .arg(what)
}

/// `dmsetup status POOL`.
pub fn status_cmd(tpool: &str) -> Cmd {
    Cmd::new("dmsetup").arg("status").arg(tpool)
}

/// `thin_delta -m --snap1 LEFT --snap2 RIGHT TMETA`.
pub fn thin_delta_cmd(tmeta: &str, left: u64, right: u64) -> Cmd {
    Cmd::new("thin_delta")
        .arg("-m")
        .arg("--snap1")
        .arg(left.to_string())
        .arg("--snap2")
        .arg(right.to_string())
        .arg(tmeta)
}

/// Whether a thin pool's `dmsetup status` line says a metadata snapshot
/// is held (its 7th field is the held root, `-` for none); `None`: not
/// a thin-pool status line.
pub fn metadata_snap_held(status: &str) -> Option<bool> {
    let f: Vec<&str> = status.split_whitespace().collect();
    if f.get(2) != Some(&"thin-pool") {
        return None;
    }
    match f.get(6) {
        Some(&"-") => Some(false),
        Some(v) if v.parse::<u64>().is_ok() => Some(true),
        _ => None,
    }
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len()
        && a.ino() == b.ino()
        && (a.mtime(), a.mtime_nsec()) == (b.mtime(), b.mtime_nsec())
        && (a.ctime(), a.ctime_nsec()) == (b.ctime(), b.ctime_nsec())
}

/// Opens the directory `p`.
fn open_dir(p: &Path) -> std::io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::open(p, flags, Mode::empty())?))
}

/// Opens `rel` below the directory `root`, never through a symlink or
/// out of its file system (a path that did not hold a plain directory
/// chain in the base is simply not found); `path_only`: `O_PATH`, so a
/// device or FIFO standing there is not opened.
fn open_beneath(root: &File, rel: &Path, path_only: bool) -> std::io::Result<File> {
    // openat2 refuses any other flag beside O_PATH.
    let flags = OFlags::NOFOLLOW
        | OFlags::CLOEXEC
        | if path_only {
            OFlags::PATH
        } else {
            OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK
        };
    let resolve = ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV;
    let fd = rustix::fs::openat2(root, rel, flags, Mode::empty(), resolve)?;
    Ok(File::from(fd))
}

/// The changed ranges of the regular file `rel` (now `new`, in the base
/// `old`); `Err` says why they cannot be had.
fn file_change(
    base_dir: &File,
    new_dir: &File,
    rel: &Path,
    old: &Metadata,
    new: &Metadata,
    delta: &ThinDelta,
) -> Result<FileChange, String> {
    let map = |root: &File| {
        open_beneath(root, rel, false)
            .and_then(|f| fiemap::extents(&f))
            .map_err(|e| format!("FIEMAP: {e}"))
    };
    let (b, n) = (map(base_dir)?, map(new_dir)?);
    let ranges = changed_ranges(&b, &n, old.len(), new.len(), delta)?;
    Ok(FileChange {
        origin: Some(rel.to_path_buf()),
        ranges,
        truncated: Some(new.len()),
        metadata: true,
        renamed: false,
        linked: old.nlink() != new.nlink(),
    })
}

/// Per changed regular file of `new_root` (by path below it), its byte
/// ranges that may differ from the same path in `base_root`, and one
/// line per file that could not be mapped (it is read whole).
pub fn file_changes(
    base_root: &Path,
    new_root: &Path,
    delta: &ThinDelta,
) -> std::io::Result<(BTreeMap<PathBuf, FileChange>, Vec<String>)> {
    let dev = std::fs::symlink_metadata(new_root)?.dev();
    let (base_dir, new_dir) = (open_dir(base_root)?, open_dir(new_root)?);
    let mut entries = BTreeMap::new();
    let mut unmapped = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(new_root.join(&dir))? {
            let e = e?;
            let rel = dir.join(e.file_name());
            let meta = e.metadata()?;
            if meta.is_dir() && meta.dev() == dev {
                dirs.push(rel);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let Ok(old) = open_beneath(&base_dir, &rel, true).and_then(|f| f.metadata()) else {
                continue;
            };
            if !old.is_file() || same_file(&old, &meta) {
                continue;
            }
            match file_change(&base_dir, &new_dir, &rel, &old, &meta, delta) {
                Ok(c) => {
                    entries.insert(rel, c);
                }
                Err(why) => unmapped.push(format!("{}: {why}", escape_path(&rel))),
            }
        }
    }
    Ok((entries, unmapped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool that saw no block change.
    fn no_delta() -> ThinDelta {
        ThinDelta {
            block_bytes: 65536,
            left: 1,
            right: 2,
            changed: vec![],
        }
    }

    #[test]
    fn the_held_metadata_root_is_read_from_the_status_line() {
        // `dmsetup status vg-pool-tpool`, captured in the test guest.
        let free = "0 2097152 thin-pool 3 123/1024 1059/16384 - rw discard_passdown queue_if_no_space - 256 ";
        let held = "0 2097152 thin-pool 3 124/1024 1059/16384 71 rw discard_passdown queue_if_no_space - 256 ";
        assert_eq!(metadata_snap_held(free), Some(false));
        assert_eq!(metadata_snap_held(held), Some(true));
        assert_eq!(metadata_snap_held("0 4194304 thin 1024 4194303"), None);
        assert_eq!(metadata_snap_held(""), None);
    }

    #[test]
    fn only_changed_regular_files_are_mapped() {
        // Two copies of a tree on the same (ext4) file system stand in for
        // the snapshots: a file the same in both is skipped; one that
        // differs gets ranges (all of it: the copies lie apart on disk).
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let (b, n) = (d.path().join("b"), d.path().join("n"));
        for r in [&b, &n] {
            std::fs::create_dir_all(r.join("sub")).unwrap();
        }
        let write = |p: PathBuf, data: &[u8]| {
            use std::io::Write;
            let mut f = File::create(p).unwrap();
            f.write_all(data).unwrap();
            f.sync_all().unwrap(); // placed: no delayed allocation left
        };
        write(b.join("sub/f"), &[1u8; 100_000]);
        write(n.join("sub/f"), &[2u8; 120_000]);
        write(n.join("new"), b"x");
        std::os::unix::fs::symlink("sub/f", n.join("link")).unwrap();
        let delta = no_delta();
        let (got, unmapped) = file_changes(&b, &n, &delta).unwrap();
        assert!(unmapped.is_empty(), "{unmapped:?}");
        let keys: Vec<&Path> = got.keys().map(PathBuf::as_path).collect();
        assert_eq!(keys, [Path::new("sub/f")]);
        let c = &got[Path::new("sub/f")];
        assert_eq!(c.ranges, vec![(0, 120_000)]);
        assert_eq!(c.truncated, Some(120_000));
        assert!(c.in_place(Path::new("sub/f")));
    }

    #[test]
    fn the_base_is_never_looked_at_through_a_symlink_or_a_special_file() {
        // In the base, `sub` is a symlink out of the tree (its target holds
        // a file `f`) and `fifo` is a FIFO; in the new tree both are plain
        // files. Neither is mapped (both are read whole), and opening the
        // FIFO does not hang.
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let (b, n, out) = (d.path().join("b"), d.path().join("n"), d.path().join("out"));
        for r in [&b, &n.join("sub"), &out] {
            std::fs::create_dir_all(r).unwrap();
        }
        std::fs::write(out.join("f"), [1u8; 5000]).unwrap();
        std::os::unix::fs::symlink(&out, b.join("sub")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            b.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        std::fs::write(n.join("sub/f"), [2u8; 6000]).unwrap();
        std::fs::write(n.join("fifo"), b"now a file").unwrap();
        let delta = no_delta();
        let (got, unmapped) = file_changes(&b, &n, &delta).unwrap();
        assert!(got.is_empty(), "{got:?}");
        assert!(unmapped.is_empty(), "{unmapped:?}");
    }
}
