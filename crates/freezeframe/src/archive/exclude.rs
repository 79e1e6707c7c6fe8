//! The walk with a container's exclude patterns applied: an excluded
//! entry is never shown to the writer (tar or repository), an excluded
//! folder is not walked, and each pattern counts the entries it skipped.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::walk::{walk, Entry, Visitor};
use crate::config::Excludes;

/// One pattern and how many entries it skipped (an excluded folder counts
/// once: what is below it is never looked at).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExcludeRecord {
    /// The pattern as configured.
    pub pattern: String,
    /// Entries it skipped.
    pub skipped: u64,
}

/// Walks `root` like [`walk`], hiding what `excludes` matches from `v`;
/// returns the walk's result and what each pattern skipped (counted also
/// when the walk failed part-way).
pub fn walk_excluding(
    root: &Path,
    v: &mut dyn Visitor,
    excludes: &Excludes,
) -> (io::Result<()>, Vec<ExcludeRecord>) {
    let mut filtered = Excluding::new(v, excludes);
    let walked = walk(root, &mut filtered);
    (walked, filtered.records())
}

/// A [`Visitor`] that hides excluded entries from `inner`.
struct Excluding<'v> {
    inner: &'v mut dyn Visitor,
    excludes: &'v Excludes,
    skipped: Vec<u64>,
}

impl<'v> Excluding<'v> {
    /// Wraps `inner`.
    fn new(inner: &'v mut dyn Visitor, excludes: &'v Excludes) -> Excluding<'v> {
        Excluding {
            inner,
            skipped: vec![0; excludes.patterns().len()],
            excludes,
        }
    }

    /// Each pattern with its count, in configured order.
    fn records(&self) -> Vec<ExcludeRecord> {
        records(self.excludes, &self.skipped)
    }
}

/// `excludes`' patterns paired with `counts`.
fn records(excludes: &Excludes, counts: &[u64]) -> Vec<ExcludeRecord> {
    excludes
        .patterns()
        .iter()
        .zip(counts)
        .map(|(p, &n)| ExcludeRecord {
            pattern: p.clone(),
            skipped: n,
        })
        .collect()
}

/// The walk's `./a/b` as `a/b` (the root, `.`, is never excluded).
fn relative(rel: &[u8]) -> Option<&Path> {
    let r = rel.strip_prefix(b"./")?;
    Some(Path::new(OsStr::from_bytes(r)))
}

impl Visitor for Excluding<'_> {
    fn visit(&mut self, e: &Entry<'_>) -> io::Result<bool> {
        if let Some(rel) = relative(e.rel) {
            if let Some(i) = self.excludes.excluded_by(rel, e.meta.is_dir()) {
                self.skipped[i] += 1;
                return Ok(false);
            }
        }
        self.inner.visit(e)
    }

    fn leave(&mut self, rel: &[u8]) -> io::Result<()> {
        self.inner.leave(rel)
    }

    fn problem(&mut self, rel: &[u8], what: &str, error: &io::Error) {
        // An entry that could not be looked at is not reported if it would
        // have been excluded as a file or as a folder.
        if let Some(r) = relative(rel) {
            if self.excludes.excluded_by(r, false).is_some()
                || self.excludes.excluded_by(r, true).is_some()
            {
                return;
            }
        }
        self.inner.problem(rel, what, error);
    }
}
