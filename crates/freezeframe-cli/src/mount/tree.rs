//! The mount's inodes: `/<container>/<backup>/...`, with a `latest`
//! symlink per container. The top two levels are made at mount time from
//! the target's list of backups; a backup is opened (a tar archive
//! indexed) when it is first looked into, a folder listed when it is
//! first looked into, and every inode then stays for the mount's life.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use freezeframe::{is_file_name, Backup, BackupView, EntryKind, NodeRef, ViewEntry};

/// The root's inode number (FUSE's).
pub const ROOT: u64 = 1;

/// Opens a backup's view.
pub type Opener = dyn Fn(&Backup) -> Result<Arc<dyn BackupView>, String> + Send + Sync;

/// A folder's children: name and inode number, by name.
pub type Children = Vec<(Vec<u8>, u64)>;

/// What an inode is.
#[derive(Debug, Clone)]
pub enum What {
    /// A folder of the mount's own (the root, a container's).
    Folder,
    /// `latest`: a symlink to the newest backup's folder.
    Latest(Vec<u8>),
    /// The root of backup `.0`.
    BackupRoot(usize),
    /// An entry of backup `.0`, at depth `.1` below its root.
    Entry(usize, usize),
}

/// One inode.
#[derive(Debug)]
pub struct Inode {
    /// Its parent's inode number.
    pub parent: u64,
    /// What it is.
    pub what: What,
    /// Its metadata (for the mount's own folders: made up).
    pub entry: ViewEntry,
    /// Its children by name, once listed.
    children: OnceLock<Result<Children, String>>,
}

/// A failure the file system answers with EIO (the message is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed(pub String);

struct Slot {
    backup: Backup,
    view: OnceLock<Result<Arc<dyn BackupView>, String>>,
}

/// The mount's inode table.
pub struct Tree {
    inodes: RwLock<Vec<Arc<Inode>>>,
    backups: Vec<Slot>,
    by_node: Mutex<HashMap<(usize, NodeRef), u64>>,
    opener: Box<Opener>,
}

fn folder_entry(name: &[u8], mtime_ns: i128) -> ViewEntry {
    ViewEntry {
        name: name.to_vec(),
        node: NodeRef::ROOT,
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime_ns,
        link: None,
        device: None,
        links: 1,
        xattrs: Vec::new(),
    }
}

fn time_ns(rfc3339: &str) -> i128 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map_or(0, i128::from)
}

/// The folder names of one container's backups, in order: the time, or
/// the time and the id's start where two share a time.
fn names_of(backups: &[&Backup]) -> Vec<Vec<u8>> {
    let mut count: HashMap<String, usize> = HashMap::new();
    let base = |b: &Backup| match &b.run {
        Some(r) if r == &b.id => r.clone(),
        _ => b.time.clone(),
    };
    for b in backups {
        *count.entry(base(b)).or_default() += 1;
    }
    backups
        .iter()
        .map(|b| {
            let n = base(b);
            if count[&n] > 1 {
                format!("{n}-{}", &b.id[..b.id.len().min(8)]).into_bytes()
            } else {
                n.into_bytes()
            }
        })
        .collect()
}

impl Tree {
    /// The tree over `backups` (oldest first); containers whose id could
    /// not be a folder name are left out and returned.
    pub fn new(backups: Vec<Backup>, opener: Box<Opener>) -> (Self, Vec<String>) {
        let mut by_container: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut left_out = Vec::new();
        for (i, b) in backups.iter().enumerate() {
            if is_file_name(b.container.as_bytes()) {
                by_container.entry(b.container.clone()).or_default().push(i);
            } else if !left_out.contains(&b.container) {
                left_out.push(b.container.clone());
            }
        }
        let root = Arc::new(Inode {
            parent: ROOT,
            what: What::Folder,
            entry: folder_entry(b"", 0),
            children: OnceLock::new(),
        });
        let tree = Tree {
            inodes: RwLock::new(vec![root]),
            backups: backups
                .into_iter()
                .map(|backup| Slot {
                    backup,
                    view: OnceLock::new(),
                })
                .collect(),
            by_node: Mutex::new(HashMap::new()),
            opener,
        };
        let mut top = Vec::new();
        for (container, idx) in by_container {
            let list: Vec<&Backup> = idx.iter().map(|&i| &tree.backups[i].backup).collect();
            let names = names_of(&list);
            let newest = list.last().map_or(0, |b| time_ns(&b.time));
            let c = tree.push(
                ROOT,
                What::Folder,
                folder_entry(container.as_bytes(), newest),
            );
            let mut kids = Vec::new();
            for (&i, name) in idx.iter().zip(&names) {
                let b = &tree.backups[i].backup;
                let ino = tree.push(c, What::BackupRoot(i), folder_entry(name, time_ns(&b.time)));
                kids.push((name.clone(), ino));
            }
            if let Some(last) = names.last() {
                let mut e = folder_entry(b"latest", newest);
                e.kind = EntryKind::Symlink;
                e.mode = 0o777;
                e.size = last.len() as u64;
                let l = tree.push(c, What::Latest(last.clone()), e);
                kids.push((b"latest".to_vec(), l));
            }
            kids.sort();
            let _ = tree.get(c).map(|n| n.children.set(Ok(kids)));
            top.push((container.into_bytes(), c));
        }
        let _ = tree.get(ROOT).map(|n| n.children.set(Ok(top)));
        (tree, left_out)
    }

    fn push(&self, parent: u64, what: What, entry: ViewEntry) -> u64 {
        let mut v = self.inodes.write().unwrap_or_else(|p| p.into_inner());
        v.push(Arc::new(Inode {
            parent,
            what,
            entry,
            children: OnceLock::new(),
        }));
        v.len() as u64
    }

    /// The inode `ino`.
    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        let v = self.inodes.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(ino.checked_sub(1)?)
            .ok()
            .and_then(|i| v.get(i).cloned())
    }

    /// The view of backup `i`, opened on first use.
    fn view(&self, i: usize) -> Result<Arc<dyn BackupView>, Failed> {
        let slot = &self.backups[i];
        slot.view
            .get_or_init(|| {
                let v = (self.opener)(&slot.backup);
                if let Ok(v) = &v {
                    for n in v.notes() {
                        tracing::warn!("{} {}: {n}", slot.backup.container, slot.backup.id);
                    }
                }
                v
            })
            .clone()
            .map_err(Failed)
    }

    /// The children of folder `ino`, listed on first use.
    pub fn children(&self, ino: u64) -> Result<Children, Failed> {
        let node = self
            .get(ino)
            .ok_or_else(|| Failed(format!("no inode {ino}")))?;
        if node.entry.kind != EntryKind::Dir {
            return Err(Failed("not a folder".into()));
        }
        node.children
            .get_or_init(|| self.list(ino, &node).map_err(|f| f.0))
            .clone()
            .map_err(Failed)
    }

    fn list(&self, ino: u64, node: &Inode) -> Result<Children, Failed> {
        let (b, depth, dir) = match node.what {
            What::BackupRoot(b) => (b, 0, NodeRef::ROOT),
            What::Entry(b, d) => (b, d + 1, node.entry.node),
            _ => return Ok(Vec::new()),
        };
        let view = self.view(b)?;
        let entries = view.children(dir).map_err(|e| Failed(e.to_string()))?;
        let path = self.path_in_backup(ino);
        let mut out = Vec::with_capacity(entries.len());
        for mut e in entries {
            // A symlink shows a target that stays inside (`links.rs`).
            if let Some(l) = e.link.take() {
                let shown = super::links::contained(&path, &l);
                e.size = shown.len() as u64;
                e.link = Some(shown);
            }
            let name = e.name.clone();
            let key = (b, e.node);
            let known = {
                let m = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
                // Hardlinks (the same node under two names) share an inode;
                // folders never do.
                m.get(&key).copied().filter(|_| e.kind != EntryKind::Dir)
            };
            let child = match known {
                Some(i) => i,
                None => {
                    let i = self.push(ino, What::Entry(b, depth), e);
                    self.by_node
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, i);
                    i
                }
            };
            out.push((name, child));
        }
        Ok(out)
    }

    /// The components of folder `ino` below its backup's root.
    fn path_in_backup(&self, ino: u64) -> Vec<Vec<u8>> {
        let mut dir = Vec::new();
        let mut at = self.get(ino);
        while let Some(n) = at.filter(|n| matches!(n.what, What::Entry(..))) {
            dir.push(n.entry.name.clone());
            at = self.get(n.parent);
        }
        dir.reverse();
        dir
    }

    /// The child `name` of folder `ino`.
    pub fn lookup(&self, ino: u64, name: &[u8]) -> Result<Option<u64>, Failed> {
        let kids = self.children(ino)?;
        Ok(kids
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .ok()
            .map(|i| kids[i].1))
    }

    /// Up to `len` bytes of file `ino` from `offset`.
    pub fn read(&self, ino: u64, offset: u64, len: usize) -> Result<Vec<u8>, Failed> {
        let node = self
            .get(ino)
            .ok_or_else(|| Failed(format!("no inode {ino}")))?;
        match node.what {
            What::Entry(b, _) if node.entry.kind == EntryKind::File => self
                .view(b)?
                .read(node.entry.node, offset, len)
                .map_err(|e| Failed(e.to_string())),
            _ => Err(Failed("not a file".into())),
        }
    }

    /// The target `readlink` shows for `ino`: inside the mount always
    /// (see `links.rs`).
    pub fn readlink(&self, ino: u64) -> Option<Vec<u8>> {
        let node = self.get(ino)?;
        match &node.what {
            What::Latest(t) => Some(t.clone()),
            What::Entry(..) => node.entry.link.clone(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freezeframe::TargetError;

    /// A backup of: `etc/` (`passwd`, `abs -> /etc/passwd`), `h1`, `h2`
    /// (one file, two names).
    struct Fake;

    fn e(name: &str, node: u64, kind: EntryKind) -> ViewEntry {
        ViewEntry {
            name: name.as_bytes().to_vec(),
            node: NodeRef(node),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 5,
            mtime_ns: 0,
            link: (kind == EntryKind::Symlink).then(|| b"/etc/passwd".to_vec()),
            device: None,
            links: 1,
            xattrs: Vec::new(),
        }
    }

    impl BackupView for Fake {
        fn children(&self, dir: NodeRef) -> Result<Vec<ViewEntry>, TargetError> {
            Ok(match dir.0 {
                0 => vec![
                    e("etc", 1, EntryKind::Dir),
                    e("h1", 4, EntryKind::File),
                    e("h2", 4, EntryKind::File),
                ],
                1 => vec![
                    e("abs", 3, EntryKind::Symlink),
                    e("passwd", 2, EntryKind::File),
                ],
                _ => Vec::new(),
            })
        }
        fn read(&self, f: NodeRef, off: u64, len: usize) -> Result<Vec<u8>, TargetError> {
            let data = format!("file{}", f.0).into_bytes();
            let lo = (off as usize).min(data.len());
            Ok(data[lo..(lo + len).min(data.len())].to_vec())
        }
    }

    fn backup(container: &str, id: &str, time: &str, run: Option<&str>) -> Backup {
        Backup {
            container: container.into(),
            id: id.into(),
            run: run.map(str::to_owned),
            time: time.into(),
            host: "h".into(),
            partial: false,
            missing: Vec::new(),
        }
    }

    fn tree() -> (Tree, Vec<String>) {
        Tree::new(
            vec![
                backup("101", "aaaa1111", "2026-12-01T00:00:00Z", Some("r1")),
                backup("101", "bbbb2222", "2026-12-01T00:00:00Z", Some("r2")),
                backup(
                    "tar",
                    "20261201T000000Z",
                    "2026-12-01T00:00:00Z",
                    Some("20261201T000000Z"),
                ),
                backup("../x", "c", "2026-12-02T00:00:00Z", None),
            ],
            Box::new(|_| Ok(Arc::new(Fake) as Arc<dyn BackupView>)),
        )
    }

    fn names(t: &Tree, ino: u64) -> Vec<String> {
        t.children(ino)
            .unwrap()
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    #[test]
    fn containers_backups_and_latest() {
        let (t, left_out) = tree();
        assert_eq!(left_out, ["../x"]);
        assert_eq!(names(&t, ROOT), ["101", "tar"]);
        let c = t.lookup(ROOT, b"101").unwrap().unwrap();
        // Same second: told apart by the id.
        assert_eq!(
            names(&t, c),
            [
                "2026-12-01T00:00:00Z-aaaa1111",
                "2026-12-01T00:00:00Z-bbbb2222",
                "latest"
            ]
        );
        let l = t.lookup(c, b"latest").unwrap().unwrap();
        assert_eq!(t.readlink(l).unwrap(), b"2026-12-01T00:00:00Z-bbbb2222");
        // A tar run is named by the run.
        let tc = t.lookup(ROOT, b"tar").unwrap().unwrap();
        assert_eq!(names(&t, tc), ["20261201T000000Z", "latest"]);
    }

    #[test]
    fn entries_hardlinks_reads_and_contained_links() {
        let (t, _) = tree();
        let c = t.lookup(ROOT, b"tar").unwrap().unwrap();
        let b = t.lookup(c, b"20261201T000000Z").unwrap().unwrap();
        assert_eq!(names(&t, b), ["etc", "h1", "h2"]);
        let h1 = t.lookup(b, b"h1").unwrap().unwrap();
        let h2 = t.lookup(b, b"h2").unwrap().unwrap();
        assert_eq!(h1, h2);
        assert_eq!(t.read(h1, 1, 100).unwrap(), b"ile4");
        let etc = t.lookup(b, b"etc").unwrap().unwrap();
        let abs = t.lookup(etc, b"abs").unwrap().unwrap();
        assert_eq!(t.readlink(abs).unwrap(), b"../etc/passwd");
        assert!(t.read(etc, 0, 1).is_err());
        assert_eq!(t.lookup(etc, b"nope").unwrap(), None);
        // Listed once: the same inodes again.
        assert_eq!(t.lookup(b, b"etc").unwrap(), Some(etc));
    }

    #[test]
    fn a_backup_that_cannot_be_opened_fails_alone() {
        let (t, _) = Tree::new(
            vec![backup("1", "r", "2026-12-01T00:00:00Z", Some("r"))],
            Box::new(|_| Err("archive damaged".into())),
        );
        let c = t.lookup(ROOT, b"1").unwrap().unwrap();
        let b = t.lookup(c, b"r").unwrap().unwrap();
        assert_eq!(t.children(b), Err(Failed("archive damaged".into())));
        assert_eq!(names(&t, c), ["latest", "r"]);
    }
}
