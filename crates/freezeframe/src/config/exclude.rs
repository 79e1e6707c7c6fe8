//! Exclude patterns: gitignore-style globs relative to a container's
//! private area (`exclude = ["var/cache/**", "tmp/*", "*.swp"]`), compiled
//! once per container and asked for every entry the walk finds.
//!
//! The semantics are git's (the `ignore` crate implements them): a pattern
//! without a slash matches a name at any depth, one with a slash is
//! anchored at the private area's root, a trailing `/` matches folders
//! only, `!` re-includes, and a folder that is excluded is not walked, so
//! nothing below it can come back.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// A pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("exclude pattern `{pattern}` is not a valid glob: {reason} (patterns are gitignore-style, relative to the private area, e.g. \"var/cache/**\", \"*.swp\")")]
pub struct BadExclude {
    /// The pattern as written.
    pub pattern: String,
    /// What the glob compiler said.
    pub reason: String,
}

/// A container's compiled exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    patterns: Vec<String>,
    matcher: Gitignore,
}

impl Excludes {
    /// Compiles `patterns` (in order: a later `!pattern` overrides an
    /// earlier match, as in a `.gitignore`).
    pub fn new(patterns: &[String]) -> Result<Excludes, BadExclude> {
        let mut b = GitignoreBuilder::new("/");
        for p in patterns {
            check(p)?;
            b.add_line(None, p).map_err(|e| BadExclude {
                pattern: p.clone(),
                reason: e.to_string(),
            })?;
        }
        let matcher = b.build().map_err(|e| BadExclude {
            pattern: patterns.join(", "),
            reason: e.to_string(),
        })?;
        Ok(Excludes {
            patterns: patterns.to_vec(),
            matcher,
        })
    }

    /// No patterns: nothing is excluded.
    pub fn none() -> Excludes {
        Excludes {
            patterns: Vec::new(),
            matcher: Gitignore::empty(),
        }
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns, as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the entry at `rel` (relative to the private area, without a
    /// leading `./`) is excluded, and by which pattern (its index in
    /// [`Excludes::patterns`]).
    pub fn excluded_by(&self, rel: &Path, is_dir: bool) -> Option<usize> {
        if self.patterns.is_empty() {
            return None;
        }
        match self.matcher.matched(Path::new("/").join(rel), is_dir) {
            Match::Ignore(glob) => {
                let original = glob.original();
                self.patterns.iter().rposition(|p| p.trim() == original)
            }
            Match::None | Match::Whitelist(_) => None,
        }
    }
}

/// Refuses what `.gitignore` would silently read as something else: an
/// empty pattern, a comment, or one that could never match below the root.
fn check(p: &str) -> Result<(), BadExclude> {
    let bad = |reason: &str| {
        Err(BadExclude {
            pattern: p.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let t = p.trim();
    if t.is_empty() {
        return bad("it is empty");
    }
    if t.starts_with('#') {
        return bad("a leading `#` makes it a comment; write `\\#` to match a `#`");
    }
    if t.split('/').any(|c| c == "..") {
        return bad("`..` cannot match anything inside the private area");
    }
    if t.contains('\0') || t.contains('\n') {
        return bad("it holds a NUL or a newline");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid")
    }

    #[test]
    fn gitignore_semantics_relative_to_the_private_area() {
        let e = ex(&[
            "var/cache/**",
            "tmp/*",
            "*.swp",
            "/top-only",
            "logs/",
            "!keep.swp",
        ]);
        let m = |p: &str, d: bool| e.excluded_by(Path::new(p), d);
        assert_eq!(m("var/cache/apt/x.deb", false), Some(0));
        assert_eq!(
            m("var/cache", true),
            None,
            "`var/cache/**` keeps the folder itself"
        );
        assert_eq!(m("var/cache/apt", true), Some(0));
        assert_eq!(
            m("srv/var/cache/x", false),
            None,
            "a slash anchors the pattern"
        );
        assert_eq!(m("tmp", true), None);
        assert_eq!(m("tmp/a", false), Some(1));
        assert_eq!(m("tmp/sub", true), Some(1));
        assert_eq!(m("home/u/.x.swp", false), Some(2), "no slash: any depth");
        assert_eq!(m("home/keep.swp", false), None, "`!` re-includes");
        assert_eq!(m("top-only", false), Some(3));
        assert_eq!(m("a/top-only", false), None);
        assert_eq!(m("a/logs", true), Some(4));
        assert_eq!(
            m("a/logs", false),
            None,
            "a trailing slash matches folders only"
        );
    }

    #[test]
    fn names_that_are_not_utf8_or_look_like_globs_are_matched_literally() {
        use std::os::unix::ffi::OsStrExt;
        let e = ex(&["*.tmp"]);
        let raw = std::ffi::OsStr::from_bytes(b"caf\xe9.tmp");
        assert_eq!(e.excluded_by(Path::new(raw), false), Some(0));
        assert_eq!(e.excluded_by(Path::new("[x].txt"), false), None);
        assert!(ex(&[]).excluded_by(Path::new("a"), false).is_none());
    }

    #[test]
    fn bad_patterns_are_refused_with_the_pattern_named() {
        for p in ["", "  ", "# note", "../etc", "a/../b", "x\ny"] {
            let err = Excludes::new(&[p.to_string()]).expect_err(p);
            assert!(err.to_string().contains("gitignore-style"), "{err}");
        }
    }
}
