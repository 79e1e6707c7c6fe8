//! Parsing `/proc/self/mountinfo`: where cgroup file systems are mounted,
//! and what is mounted inside a container's private area.

use std::path::PathBuf;

/// One line of `/proc/self/mountinfo`, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Device numbers `major:minor`.
    pub dev: (u32, u32),
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// File system type (`cgroup`, `cgroup2`, `btrfs`, …).
    pub fs_type: String,
    /// Mount source (a device, `tmpfs`, …).
    pub source: String,
    /// The folder of the source file system mounted here (`/` for all of
    /// it; a bind mount shows the folder it came from).
    pub root: PathBuf,
    /// Super-block options (for cgroup v1: the controllers, e.g. `rw,freezer`).
    pub super_options: String,
}

/// Parses the text of a mountinfo file. Malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            // id parent major:minor root mount_point options [optional...] - fstype source super_options
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let (maj, min) = l.nth(2)?.split_once(':')?;
            let dev = (maj.parse().ok()?, min.parse().ok()?);
            let root = l.next()?;
            let mount_point = l.next()?;
            let mut r = right.split(' ');
            let fs_type = r.next()?.to_owned();
            let source = unescape(r.next()?);
            let super_options = r.next().unwrap_or("").to_owned();
            Some(MountEntry {
                dev,
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type,
                source,
                root: PathBuf::from(unescape(root)),
                super_options,
            })
        })
        .collect()
}

/// Undoes the octal escapes (`\040` for a space) the kernel writes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's mount table, as the kernel shows it.
pub const SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// Reads this process's mount table.
pub fn read_self() -> std::io::Result<Vec<MountEntry>> {
    read(std::path::Path::new(SELF_MOUNTINFO))
}

/// Where this process sees the cgroup hierarchies (none found: an
/// unreadable mount table counts as no cgroups).
pub fn host_cgroup_mounts() -> CgroupMounts {
    read_self().map(|m| cgroup_mounts(&m)).unwrap_or_default()
}

/// Reads a mount table in mountinfo format.
pub fn read(path: &std::path::Path) -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

/// The mounts on `dir` or inside it, by mount point (a mount hidden by a
/// later one on the same point is left out). A backup from a snapshot of
/// the volume holds what is *under* each of them, not what they show.
pub fn mounts_inside<'e>(entries: &'e [MountEntry], dir: &std::path::Path) -> Vec<&'e MountEntry> {
    let mut out: Vec<&MountEntry> = Vec::new();
    for e in entries {
        if e.mount_point.starts_with(dir) {
            // Later lines mount over earlier ones at the same point.
            out.retain(|o| o.mount_point != e.mount_point);
            out.push(e);
        }
    }
    out.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    out
}

/// Where cgroup hierarchies are mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// The cgroup v2 (unified) mount, if any.
    pub v2: Option<PathBuf>,
    /// The cgroup v1 hierarchy carrying the `freezer` controller, if any.
    pub v1_freezer: Option<PathBuf>,
    /// The cgroup v1 hierarchy carrying the `blkio` controller, if any.
    pub v1_blkio: Option<PathBuf>,
}

/// Finds the cgroup v2 mount and the v1 freezer mount among `entries`.
pub fn cgroup_mounts(entries: &[MountEntry]) -> CgroupMounts {
    let mut m = CgroupMounts::default();
    for e in entries {
        if e.fs_type == "cgroup2" && m.v2.is_none() {
            m.v2 = Some(e.mount_point.clone());
        }
        if e.fs_type == "cgroup"
            && m.v1_freezer.is_none()
            && e.super_options.split(',').any(|o| o == "freezer")
        {
            m.v1_freezer = Some(e.mount_point.clone());
        }
        if e.fs_type == "cgroup"
            && m.v1_blkio.is_none()
            && e.super_options.split(',').any(|o| o == "blkio")
        {
            m.v1_blkio = Some(e.mount_point.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on a hybrid host (v1 controllers + v2 at /sys/fs/cgroup/unified).
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    // Captured in the LVM guest (pure v2).
    const UNIFIED: &str = "\
22 1 0:20 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
50 1 0:40 / /mnt/my\\040vol rw,relatime shared:30 - btrfs /dev/loop3 rw,space_cache=v2,subvolid=5,subvol=/
";

    #[test]
    fn finds_hybrid_layout() {
        let m = cgroup_mounts(&parse(HYBRID));
        assert_eq!(m.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(m.v1_freezer, Some(PathBuf::from("/sys/fs/cgroup/freezer")));
    }

    #[test]
    fn finds_unified_layout_and_unescapes() {
        let e = parse(UNIFIED);
        let m = cgroup_mounts(&e);
        assert_eq!(m.v2, Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(m.v1_freezer, None);
        assert_eq!(e[1].mount_point, PathBuf::from("/mnt/my vol"));
        assert_eq!(e[1].fs_type, "btrfs");
        assert_eq!(e[1].dev, (0, 40));
        assert_eq!(e[1].source, "/dev/loop3");
        assert_eq!(e[1].root, PathBuf::from("/"));
    }

    #[test]
    fn mounts_inside_a_folder_only_and_the_last_on_each_point() {
        let table = "\
50 1 0:40 / /srv/ct rw - btrfs /dev/loop3 rw
51 50 0:41 / /srv/ct/101/tmp rw - tmpfs tmpfs rw
52 50 0:40 /101/data /srv/ct/101/mnt/bind rw - btrfs /dev/loop3 rw
53 50 0:42 / /srv/ct/1010 rw - tmpfs tmpfs rw
54 51 0:43 / /srv/ct/101/tmp rw - tmpfs other rw
55 50 0:44 / /srv/ct/101 rw - tmpfs self rw
";
        let e = parse(table);
        let inside = mounts_inside(&e, std::path::Path::new("/srv/ct/101"));
        let got: Vec<(&str, &str, &str)> = inside
            .iter()
            .map(|m| {
                (
                    m.mount_point.to_str().unwrap(),
                    m.fs_type.as_str(),
                    m.source.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/srv/ct/101", "tmpfs", "self"),
                ("/srv/ct/101/mnt/bind", "btrfs", "/dev/loop3"),
                ("/srv/ct/101/tmp", "tmpfs", "other"),
            ]
        );
        assert_eq!(inside[1].root, PathBuf::from("/101/data"));
    }
}
