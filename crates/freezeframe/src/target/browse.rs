//! Looking into a backup without restoring it: paths an operator names
//! (`ls`, `cat`, `restore --include`) and the entries a target lists, the
//! same for both kinds of target.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use serde::Serialize;

use crate::archive::walk::Kind;
pub use crate::sys::shown::escape;
use crate::sys::time::Timestamp;

/// A path inside a backup, as an operator names it: relative to the
/// private area's root (a leading `/` or `./` is allowed and dropped), its
/// components plain names — never `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrowsePath {
    comps: Vec<Vec<u8>>,
}

/// A path that cannot name anything inside a backup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBrowsePath {
    /// It holds a NUL byte.
    #[error("a path must not contain a NUL byte")]
    Nul,
    /// It climbs out with `..`.
    #[error("`{0}`: `..` is not allowed in a path inside a backup")]
    ParentDir(String),
    /// It is not a path at all.
    #[error("`{0}` is not a path")]
    NotAPath(String),
}

impl BrowsePath {
    /// Checks `raw` (bytes, as the shell passed them).
    pub fn parse(raw: &OsStr) -> Result<Self, BadBrowsePath> {
        let b = raw.as_bytes();
        if b.contains(&0) {
            return Err(BadBrowsePath::Nul);
        }
        let mut comps = Vec::new();
        for c in Path::new(raw).components() {
            match c {
                Component::Normal(n) => comps.push(n.as_bytes().to_vec()),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir => return Err(BadBrowsePath::ParentDir(escape(b))),
                Component::Prefix(_) => return Err(BadBrowsePath::NotAPath(escape(b))),
            }
        }
        Ok(Self { comps })
    }

    /// The root of the backup (every entry).
    pub fn root() -> Self {
        Self { comps: Vec::new() }
    }

    /// Its components.
    pub fn components(&self) -> &[Vec<u8>] {
        &self.comps
    }

    /// Whether it is the root.
    pub fn is_root(&self) -> bool {
        self.comps.is_empty()
    }

    /// From an entry's path as a target stores it (`./a/b`, `a/b`).
    pub fn from_stored(stored: &[u8]) -> Self {
        Self {
            comps: stored
                .split(|&c| c == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
                .map(<[u8]>::to_vec)
                .collect(),
        }
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &BrowsePath) -> bool {
        self.comps.starts_with(&other.comps)
    }

    /// Whether `self` lies strictly above `other` (a folder on its way).
    pub fn is_ancestor_of(&self, other: &BrowsePath) -> bool {
        other.comps.len() > self.comps.len() && other.comps.starts_with(&self.comps)
    }

    /// As bytes, components joined by `/` (`` for the root).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.comps.join(&b'/')
    }
}

impl std::fmt::Display for BrowsePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.comps.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&escape(&self.to_bytes()))
        }
    }
}

/// One entry of a backup, as `ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LsEntry {
    /// Its path in the backup, escaped ([`escape`]), e.g. `etc/passwd`.
    pub path: String,
    /// `dir`, `file`, `symlink`, `fifo`, `char`, `block`, `socket`.
    pub kind: Kind,
    /// Permission bits with setuid, setgid, sticky.
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Owner name, if the backup carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Group name, if the backup carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Last modification, ns since the epoch.
    pub mtime_ns: i128,
    /// A symlink's target, escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A device's major and minor number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<(u64, u64)>,
    /// Its path, raw (not escaped), for comparing and selecting.
    #[serde(skip)]
    pub raw_path: Vec<u8>,
}

impl LsEntry {
    /// `drwxr-xr-x`, as `ls -l` and `tar -tv` write it.
    pub fn mode_string(&self) -> String {
        let t = match self.kind {
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::Fifo => 'p',
            Kind::Char => 'c',
            Kind::Block => 'b',
            Kind::Socket => 's',
            Kind::File => '-',
        };
        let m = self.mode;
        let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
        let exec =
            |x: u32, special: u32, set: char, unset: char| match (m & x != 0, m & special != 0) {
                (true, true) => set,
                (false, true) => unset,
                (true, false) => 'x',
                (false, false) => '-',
            };
        [
            t,
            bit(0o400, 'r'),
            bit(0o200, 'w'),
            exec(0o100, 0o4000, 's', 'S'),
            bit(0o040, 'r'),
            bit(0o020, 'w'),
            exec(0o010, 0o2000, 's', 'S'),
            bit(0o004, 'r'),
            bit(0o002, 'w'),
            exec(0o001, 0o1000, 't', 'T'),
        ]
        .iter()
        .collect()
    }

    /// One line, as `tar -tv` writes it: mode, owner/group, size (or
    /// device numbers), mtime, path (and a symlink's target).
    pub fn line(&self) -> String {
        let owner = format!(
            "{}/{}",
            self.user.clone().unwrap_or_else(|| self.uid.to_string()),
            self.group.clone().unwrap_or_else(|| self.gid.to_string())
        );
        let size = match self.device {
            Some((ma, mi)) => format!("{ma},{mi}"),
            None => self.size.to_string(),
        };
        let t = Timestamp::from_ns(self.mtime_ns);
        let when = chrono::DateTime::from_timestamp(t.sec, t.nsec)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| t.to_pax());
        let mut s = format!(
            "{} {owner:<16} {size:>12} {when} {}",
            self.mode_string(),
            if self.path.is_empty() {
                "."
            } else {
                &self.path
            }
        );
        if let Some(l) = &self.link {
            s.push_str(" -> ");
            s.push_str(l);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_a_backup() {
        let p = |s: &str| BrowsePath::parse(OsStr::new(s));
        assert_eq!(p("/etc/passwd").unwrap(), p("./etc//passwd").unwrap());
        assert!(p("/").unwrap().is_root());
        assert!(p("etc/../x").unwrap_err().to_string().contains("`..`"));
        assert!(p("../etc").is_err());
        let etc = p("etc").unwrap();
        assert!(p("etc/passwd").unwrap().is_within(&etc));
        assert!(!p("etcetera").unwrap().is_within(&etc));
        assert!(etc.is_ancestor_of(&p("etc/x").unwrap()));
        assert!(!etc.is_ancestor_of(&etc));
        assert_eq!(
            BrowsePath::from_stored(b"./etc/passwd"),
            p("etc/passwd").unwrap()
        );
        let raw = OsStr::from_bytes(b"bad-\xff-name");
        assert_eq!(BrowsePath::parse(raw).unwrap().to_bytes(), b"bad-\xff-name");
    }

    #[test]
    fn lines_like_tar() {
        let e = LsEntry {
            path: "usr/bin/su".into(),
            kind: Kind::File,
            mode: 0o4755,
            uid: 0,
            gid: 0,
            user: Some("root".into()),
            group: None,
            size: 71912,
            mtime_ns: 1_700_000_000_000_000_000,
            link: None,
            device: None,
            raw_path: b"usr/bin/su".to_vec(),
        };
        assert_eq!(e.mode_string(), "-rwsr-xr-x");
        assert_eq!(
            e.line(),
            "-rwsr-xr-x root/0                  71912 2023-11-14 22:13:20 usr/bin/su"
        );
        let d = LsEntry {
            kind: Kind::Dir,
            mode: 0o1777,
            ..e
        };
        assert_eq!(d.mode_string(), "drwxrwxrwt");
    }
}
