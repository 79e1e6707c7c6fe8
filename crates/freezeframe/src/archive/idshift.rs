//! Shifting the owners of a restored tree from one user-namespace id map
//! to another (`restore --as NEW --map-ids`): every uid and gid as the old
//! container saw it is kept, only the host ids behind them change. What
//! `chown` would lose is put back: set-user/group-id bits, file
//! capabilities (a v3 capability's root id is shifted too) and the ids in
//! POSIX ACLs.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use super::walk::{walk, Entry, Kind, Visitor};
use crate::sys::shown::escape;

/// Which ids a range maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// User ids.
    User,
    /// Group ids.
    Group,
}

/// `count` ids from `inside` in the container are `host`… on the host
/// (one `lxc.idmap` line, one `/proc/<pid>/uid_map` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// User or group ids.
    pub kind: IdKind,
    /// The first id inside the container.
    pub inside: u32,
    /// The host id it is.
    pub host: u32,
    /// How many ids follow.
    pub count: u32,
}

/// A range that is not `u|g|b INSIDE HOST COUNT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an id range: write `u 0 100000 65536` (or `u:0:100000:65536`; `g` for groups, `b` for both)")]
pub struct BadIdRange(pub String);

impl IdRange {
    /// Parses `u 0 100000 65536` (LXC's `lxc.idmap` form) or the same with
    /// `:` between the fields; `b` gives a user and a group range.
    pub fn parse(text: &str) -> Result<Vec<IdRange>, BadIdRange> {
        let bad = || BadIdRange(text.to_owned());
        let f: Vec<&str> = text
            .split(|c: char| c == ':' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        let [kind, inside, host, count] = f[..] else {
            return Err(bad());
        };
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
        let (inside, host, count) = (num(inside)?, num(host)?, num(count)?);
        let fits = |start: u32| start.checked_add(count).is_some();
        if count == 0 || !fits(inside) || !fits(host) {
            return Err(bad());
        }
        let kinds: &[IdKind] = match kind {
            "u" => &[IdKind::User],
            "g" => &[IdKind::Group],
            "b" => &[IdKind::User, IdKind::Group],
            _ => return Err(bad()),
        };
        Ok(kinds
            .iter()
            .map(|&kind| IdRange {
                kind,
                inside,
                host,
                count,
            })
            .collect())
    }

    /// The `lxc.idmap` value: `u 0 100000 65536`.
    pub fn lxc_value(&self) -> String {
        let k = match self.kind {
            IdKind::User => 'u',
            IdKind::Group => 'g',
        };
        format!("{k} {} {} {}", self.inside, self.host, self.count)
    }
}

/// A container's id map; an empty map is a privileged container's (every
/// id is the host's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap(pub Vec<IdRange>);

impl IdMap {
    fn ranges(&self, kind: IdKind) -> impl Iterator<Item = &IdRange> {
        self.0.iter().filter(move |r| r.kind == kind)
    }

    fn identity(&self, kind: IdKind) -> bool {
        self.ranges(kind).next().is_none()
    }

    /// The id inside the container of host id `host`.
    pub fn to_inside(&self, kind: IdKind, host: u32) -> Option<u32> {
        if self.identity(kind) {
            return Some(host);
        }
        self.ranges(kind)
            .find(|r| host >= r.host && host - r.host < r.count)
            .map(|r| r.inside + (host - r.host))
    }

    /// The host id of `inside`, the id inside the container.
    pub fn to_host(&self, kind: IdKind, inside: u32) -> Option<u32> {
        if self.identity(kind) {
            return Some(inside);
        }
        self.ranges(kind)
            .find(|r| inside >= r.inside && inside - r.inside < r.count)
            .map(|r| r.host + (inside - r.inside))
    }

    /// The first id inside the container `self` maps that `other` does
    /// not, per kind: the new map must cover every id the old one gave.
    pub fn uncovered_by(&self, other: &IdMap) -> Option<(IdKind, u32)> {
        for kind in [IdKind::User, IdKind::Group] {
            if self.identity(kind) {
                // A privileged container may own any id: the new map is
                // checked per file instead (see `ShiftReport::unmapped`).
                continue;
            }
            for r in self.ranges(kind) {
                let mut id = r.inside;
                let end = r.inside as u64 + r.count as u64;
                while (id as u64) < end {
                    let Some(c) = other
                        .ranges(kind)
                        .find(|o| id >= o.inside && id - o.inside < o.count)
                    else {
                        return Some((kind, id));
                    };
                    let next = c.inside as u64 + c.count as u64;
                    if next >= end {
                        break;
                    }
                    id = next as u32;
                }
            }
        }
        None
    }
}

/// From the old container's host ids to the new one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdShift {
    /// The map the tree was written with.
    pub from: IdMap,
    /// The map it is shifted to.
    pub to: IdMap,
}

impl IdShift {
    /// The new host id for the old host id `id`; `None`: the old map does
    /// not give it (the container saw it as `nobody`) or the new map has
    /// no place for it.
    pub fn shift(&self, kind: IdKind, id: u32) -> Option<u32> {
        self.to.to_host(kind, self.from.to_inside(kind, id)?)
    }
}

/// What shifting did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShiftReport {
    /// Entries whose owners were changed.
    pub shifted: u64,
    /// Entries left as they were: an owner neither map gives (the first
    /// few, as `./path uid:gid`).
    pub unmapped: Vec<String>,
    /// How many entries were left so, in all.
    pub unmapped_count: u64,
}

const CAPS_XATTR: &str = "security.capability";
const CAPS_V3: u32 = 0x0300_0000;
const CAPS_V3_LEN: usize = 24;
const SETID_BITS: u32 = 0o6000;
/// How many unmapped entries the report names.
const UNMAPPED_NAMED: usize = 20;

/// Shifts the owners of every entry of the tree at `root` (the root too).
pub fn shift_tree(root: &Path, shift: &IdShift) -> io::Result<ShiftReport> {
    let mut v = Shifter {
        shift,
        report: ShiftReport::default(),
        failed: None,
        done: HashSet::new(),
    };
    walk(root, &mut v)?;
    match v.failed {
        Some(e) => Err(e),
        None => Ok(v.report),
    }
}

struct Shifter<'a> {
    shift: &'a IdShift,
    report: ShiftReport,
    failed: Option<io::Error>,
    /// Inodes with more than one name already shifted: a hardlink's
    /// second name must not be shifted twice.
    done: HashSet<(u64, u64)>,
}

impl Shifter<'_> {
    /// The new owner of `e`; the root of the tree, if neither map gives
    /// its owner (a restore that does not record it made it), goes to the
    /// new container's root.
    fn owner(&self, e: &Entry<'_>) -> (Option<u32>, Option<u32>) {
        let m = e.meta;
        let mut uid = self.shift.shift(IdKind::User, m.uid);
        let mut gid = self.shift.shift(IdKind::Group, m.gid);
        if e.rel == b"." {
            uid = uid.or_else(|| self.shift.to.to_host(IdKind::User, 0));
            gid = gid.or_else(|| self.shift.to.to_host(IdKind::Group, 0));
        }
        (uid, gid)
    }

    fn entry(&mut self, e: &Entry<'_>) -> io::Result<()> {
        let m = e.meta;
        if m.nlink > 1 && !m.is_dir() && !self.done.insert((m.dev, m.ino)) {
            return Ok(());
        }
        let (Some(uid), Some(gid)) = self.owner(e) else {
            self.report.unmapped_count += 1;
            if self.report.unmapped.len() < UNMAPPED_NAMED {
                self.report
                    .unmapped
                    .push(format!("{} {}:{}", escape(e.rel), m.uid, m.gid));
            }
            return Ok(());
        };
        // chown drops what it must not keep for the old owner: read it first.
        let xattrs = if m.kind == Kind::Symlink {
            Vec::new()
        } else {
            e.xattrs()?
        };
        e.chown(uid, gid)?;
        if m.kind != Kind::Symlink && m.mode & SETID_BITS != 0 {
            e.chmod(m.mode)?;
        }
        for (k, v) in xattrs {
            let shifted = match k.as_str() {
                CAPS_XATTR => Some(self.caps(v)),
                super::acl::XATTR_ACCESS | super::acl::XATTR_DEFAULT => self.acl(&v),
                _ => None,
            };
            if let Some(v) = shifted {
                e.set_xattr(&k, &v)?;
            }
        }
        self.report.shifted += 1;
        Ok(())
    }

    /// A v3 capability names the root id of its namespace: shifted. v2 is
    /// put back as it was (chown removed it).
    fn caps(&self, mut v: Vec<u8>) -> Vec<u8> {
        if v.len() == CAPS_V3_LEN {
            let magic = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
            if magic & 0xff00_0000 == CAPS_V3 {
                let root = u32::from_le_bytes([v[20], v[21], v[22], v[23]]);
                if let Some(r) = self.shift.shift(IdKind::User, root) {
                    v[20..24].copy_from_slice(&r.to_le_bytes());
                }
            }
        }
        v
    }

    /// The named users and groups of an ACL, shifted (`None`: not an ACL
    /// this knows, left alone).
    fn acl(&self, v: &[u8]) -> Option<Vec<u8>> {
        super::acl::map_ids(v, |group, id| {
            let kind = if group { IdKind::Group } else { IdKind::User };
            self.shift.shift(kind, id).unwrap_or(id)
        })
    }
}

impl Visitor for Shifter<'_> {
    fn visit(&mut self, e: &Entry<'_>) -> io::Result<bool> {
        if self.failed.is_some() {
            return Ok(false);
        }
        if let Err(err) = self.entry(e) {
            self.failed = Some(io::Error::new(
                err.kind(),
                format!("{}: {err}", escape(e.rel)),
            ));
            return Ok(false);
        }
        Ok(e.meta.is_dir())
    }

    fn problem(&mut self, rel: &[u8], what: &str, error: &io::Error) {
        if self.failed.is_none() {
            self.failed = Some(io::Error::new(
                error.kind(),
                format!("{}: {what}: {error}", escape(rel)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(lines: &[&str]) -> IdMap {
        IdMap(
            lines
                .iter()
                .flat_map(|l| IdRange::parse(l).unwrap())
                .collect(),
        )
    }

    #[test]
    fn ranges_parse_in_both_forms() {
        assert_eq!(
            IdRange::parse("u 0 100000 65536").unwrap(),
            vec![IdRange {
                kind: IdKind::User,
                inside: 0,
                host: 100000,
                count: 65536
            }]
        );
        assert_eq!(IdRange::parse("b:0:1:2").unwrap().len(), 2);
        assert_eq!(
            IdRange::parse("g 0 100000 65536").unwrap()[0].lxc_value(),
            "g 0 100000 65536"
        );
        for bad in [
            "",
            "u 0 1",
            "x 0 1 2",
            "u 0 1 0",
            "u -1 0 5",
            "u 0 4294967295 2",
        ] {
            assert!(IdRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shifts_through_the_container_ids() {
        let old = map(&["b 0 100000 65536"]);
        let new = map(&["u 0 200000 1000", "u 1000 300000 64536", "g 0 200000 65536"]);
        let s = IdShift {
            from: old.clone(),
            to: new.clone(),
        };
        assert_eq!(s.shift(IdKind::User, 100000), Some(200000));
        assert_eq!(s.shift(IdKind::User, 101000), Some(300000));
        assert_eq!(s.shift(IdKind::Group, 100005), Some(200005));
        // Host root is `nobody` inside the old container: not shifted.
        assert_eq!(s.shift(IdKind::User, 0), None);
        assert_eq!(old.uncovered_by(&new), None);
        assert_eq!(
            old.uncovered_by(&map(&["u 0 200000 1000", "g 0 200000 65536"])),
            Some((IdKind::User, 1000))
        );
        // From a privileged container: container ids are host ids.
        let p = IdShift {
            from: IdMap::default(),
            to: new,
        };
        assert_eq!(p.shift(IdKind::User, 33), Some(200033));
        assert_eq!(p.shift(IdKind::User, 70000), None);
    }
}
