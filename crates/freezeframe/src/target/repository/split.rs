//! How one container's files are spread over archivers running side by
//! side. rustic_core chunks each file on one thread and hands results on in
//! path order, so one large file holds up everything after it: two changed
//! databases in neighbouring folders are read one after the other, and a
//! large file at the end of the walk starts last. Each part backs up every
//! folder but only its own files; the parts' trees are merged into the
//! container's one snapshot afterwards.
//!
//! Part 0 takes every file below [`BIG_FILE`] (rustic_core already reads
//! those on all cores); the large files go to up to `MAX_PARTS - 1` more
//! parts, largest first on the least loaded, so they all start at once.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::archive::walk::{Entry, Kind, Visitor};

/// Files at least this large get a part of their own (shared with other
/// large files when there are more than `MAX_PARTS - 1`).
pub const BIG_FILE: u64 = 64 << 20;

/// At most this many parts (each is a full rustic_core archiver with its
/// own threads and pack buffers): `target.max_parts`, bounded in the config.
pub use crate::config::MAX_PARTS;

/// The assignment of files to parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    parts: usize,
    big: HashMap<PathBuf, usize>,
}

impl Split {
    /// Everything in one part.
    pub fn single() -> Self {
        Split {
            parts: 1,
            big: HashMap::new(),
        }
    }

    /// Walks `root` (not following links, not failing: the backup's own walk
    /// reports what cannot be read) for its large files and splits them off
    /// when `workers` (cores) allow work side by side, into at most
    /// `max_parts` parts.
    pub fn plan(root: &Path, workers: usize, max_parts: usize) -> Split {
        if !Split::can_split(workers, max_parts) {
            // Nothing to plan: spare the walk.
            return Split::single();
        }
        let mut big = Vec::new();
        walk(root, &mut |path, size| {
            if size >= BIG_FILE {
                big.push((path, size));
            }
        });
        Split::from_big_files(big, workers, max_parts)
    }

    /// Splits the large files (path, size) over parts 1.. when `workers`
    /// is at least 2 and `max_parts` (capped at [`MAX_PARTS`]) allows.
    pub fn from_big_files(mut big: Vec<(PathBuf, u64)>, workers: usize, max_parts: usize) -> Split {
        if !Split::can_split(workers, max_parts) || big.is_empty() {
            return Split::single();
        }
        let max_parts = max_parts.min(MAX_PARTS);
        let bins = big.len().min(max_parts - 1);
        // Largest first; ties by path, so the plan does not depend on the
        // order the folder listing came in.
        big.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut load = vec![0u64; bins];
        let mut assigned = HashMap::with_capacity(big.len());
        for (path, size) in big {
            let k = (0..bins).min_by_key(|k| (load[*k], *k)).unwrap_or(0);
            load[k] += size;
            assigned.insert(path, k + 1);
        }
        Split {
            parts: bins + 1,
            big: assigned,
        }
    }

    /// Whether `workers` cores and a cap of `max_parts` leave room for
    /// more than one part.
    fn can_split(workers: usize, max_parts: usize) -> bool {
        workers >= 2 && max_parts >= 2
    }

    /// How many parts.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The part that backs up the non-folder entry at `path`.
    pub fn part_of(&self, path: &Path) -> usize {
        self.big.get(path).copied().unwrap_or(0)
    }
}

/// The regular files below `root` with their sizes, found with the
/// backup's own walk (any depth; other file systems not descended).
fn walk(root: &Path, found: &mut impl FnMut(PathBuf, u64)) {
    struct Sizes<'f, F: FnMut(PathBuf, u64)> {
        root: &'f Path,
        dev: Option<u64>,
        found: &'f mut F,
    }
    impl<F: FnMut(PathBuf, u64)> Visitor for Sizes<'_, F> {
        fn visit(&mut self, e: &Entry<'_>) -> std::io::Result<bool> {
            let dev = *self.dev.get_or_insert(e.meta.dev);
            if e.meta.kind == Kind::File {
                let rel = e.rel.strip_prefix(b"./").unwrap_or(e.rel);
                (self.found)(self.root.join(OsStr::from_bytes(rel)), e.meta.size);
            }
            Ok(e.meta.is_dir() && e.meta.dev == dev && !(e.meta.mount_root && e.rel != b"."))
        }
        fn problem(&mut self, _: &[u8], _: &str, _: &std::io::Error) {
            // The backup's own walk reports what cannot be read.
        }
    }
    let _ = crate::archive::walk::walk(
        root,
        &mut Sizes {
            root,
            dev: None,
            found,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const MIB: u64 = 1 << 20;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn no_large_files_or_one_core_means_one_part() {
        assert_eq!(Split::from_big_files(vec![], 8, MAX_PARTS).parts(), 1);
        assert_eq!(
            Split::from_big_files(vec![(p("/a"), 600 * MIB)], 1, MAX_PARTS).parts(),
            1
        );
        let one = Split::from_big_files(vec![(p("/a"), 600 * MIB)], 2, MAX_PARTS);
        assert_eq!(one.parts(), 2);
        assert_eq!(one.part_of(Path::new("/a")), 1);
        assert_eq!(one.part_of(Path::new("/small")), 0);
    }

    #[test]
    fn large_files_get_parts_of_their_own() {
        // The benchmark container: small files, a database and a log.
        let s = Split::from_big_files(
            vec![
                (p("/v/lib/db/app.db"), 600 * MIB),
                (p("/v/log/app.log"), 600 * MIB),
            ],
            2,
            MAX_PARTS,
        );
        assert_eq!(s.parts(), 3);
        let (db, log) = (
            s.part_of(Path::new("/v/lib/db/app.db")),
            s.part_of(Path::new("/v/log/app.log")),
        );
        assert!(db >= 1 && log >= 1 && db != log, "{s:?}");
        assert_eq!(s.part_of(Path::new("/usr/lib/x.so")), 0);
    }

    #[test]
    fn many_large_files_share_balanced_parts() {
        let big: Vec<_> = (0..40)
            .map(|i| (p(&format!("/f{i:02}")), (i % 7 + 1) * 70 * MIB))
            .collect();
        let total: u64 = big.iter().map(|b| b.1).sum();
        let s = Split::from_big_files(big.clone(), 16, MAX_PARTS);
        assert_eq!(s.parts(), MAX_PARTS);
        let mut load = vec![0u64; MAX_PARTS];
        for (path, size) in &big {
            load[s.part_of(path)] += size;
        }
        assert_eq!(load[0], 0, "large files never go to part 0");
        let bins = (MAX_PARTS - 1) as u64;
        let max = *load.iter().max().unwrap();
        // Largest first on the least loaded: off by at most one file.
        assert!(max - total / bins <= 490 * MIB, "{load:?}");
        // The same plan whatever the listing order.
        let mut rev = big.clone();
        rev.reverse();
        assert_eq!(Split::from_big_files(rev, 16, MAX_PARTS), s);
        // The operator's cap (target.max_parts).
        assert_eq!(Split::from_big_files(big.clone(), 16, 2).parts(), 2);
        assert_eq!(Split::from_big_files(big, 16, 1), Split::single());
    }

    #[test]
    fn plan_walks_the_tree_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a/b")).unwrap();
        for name in ["a/b/big1", "a/big2"] {
            // Sparse: large by size, nothing written.
            let f = fs::File::create(d.path().join(name)).unwrap();
            f.set_len(BIG_FILE).unwrap();
        }
        fs::write(d.path().join("a/small"), "x").unwrap();
        std::os::unix::fs::symlink("/", d.path().join("a/root")).unwrap();
        let s = Split::plan(d.path(), 2, MAX_PARTS);
        assert_eq!(s.parts(), 3, "{s:?}");
        assert_ne!(
            s.part_of(&d.path().join("a/b/big1")),
            s.part_of(&d.path().join("a/big2"))
        );
        assert_eq!(s.part_of(&d.path().join("a/small")), 0);
        assert_eq!(Split::plan(d.path(), 1, MAX_PARTS), Split::single());
        assert_eq!(Split::plan(d.path(), 2, 1), Split::single());
    }
}
