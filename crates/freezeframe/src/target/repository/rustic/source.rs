//! The backup source: freezeframe's own walk of the snapshot mount
//! (`archive::walk`: relative to folder descriptors, so a tree of any depth
//! is read whole, which rustic's path-based walker is not), fed to
//! rustic_core's archiver as restic nodes. Every file that cannot be
//! opened or read is counted on our side (rustic_core only logs it and
//! saves the snapshot as if complete), and the container's config file and
//! memory dump are added under the reserved top-level folder. Owner names
//! come from the container's own `etc/passwd` and `etc/group`, as in tar
//! archives.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crossbeam_channel::{bounded, Receiver, Sender};
use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};

use crate::archive::exclude::{walk_excluding, ExcludeRecord};
use crate::archive::owners::Owners;
use crate::archive::walk::{Entry, Kind, Visitor};
use crate::config::Excludes;
use crate::sys::time::Timestamp;
use crate::sys::Cancel;
use crate::target::repository::gomode::to_go;
use crate::target::repository::RESERVED_DIR;

use super::write::ReadAt;
use crate::sys::shown::{escape, escape_path};

/// Entries walked ahead of the archiver.
const WALK_AHEAD: usize = 256;
/// Paths at least this long are opened while walked (through the folder's
/// descriptor), not later by path, which `open(2)` would refuse.
const LONG_PATH: usize = 3800;

/// Go's `os.ModeDir`, as restic stores a directory's mode.
const GO_MODE_DIR: u32 = 1 << 31;

/// What reading the source found, shared with the readers.
#[derive(Debug, Default)]
pub(super) struct Findings {
    /// Paths (relative to the source) that could not be read.
    pub unreadable: Mutex<Vec<String>>,
    /// Bytes of file data read.
    pub bytes_read: AtomicU64,
    /// The container itself has a top-level entry of the reserved name.
    pub reserved_clash: AtomicBool,
    /// The run was cancelled while reading.
    pub cancelled: AtomicBool,
    /// What each exclude pattern skipped (set when the walk ends).
    pub excluded: Mutex<Vec<ExcludeRecord>>,
}

impl Findings {
    fn unreadable(&self, rel: String) {
        if let Ok(mut v) = self.unreadable.lock() {
            v.push(rel);
        }
    }
}

/// A file to add under the reserved folder.
#[derive(Debug, Clone)]
pub(super) struct Extra {
    /// Name inside the reserved folder.
    pub name: &'static str,
    /// The file to read.
    pub path: PathBuf,
}

/// The container's private area plus the extras.
pub(super) struct CountingSource {
    root: PathBuf,
    owners: Arc<Owners>,
    extras: Vec<Extra>,
    findings: Arc<Findings>,
    cancel: Cancel,
    excludes: Excludes,
}

impl CountingSource {
    /// The source of the tree at `root`, with `extras` under the reserved
    /// folder; what cannot be read goes to `findings`.
    pub(super) fn new(
        root: &Path,
        extras: Vec<Extra>,
        findings: Arc<Findings>,
        cancel: Cancel,
        excludes: Excludes,
    ) -> Self {
        Self {
            root: root.to_owned(),
            owners: Arc::new(Owners::load(root)),
            extras,
            findings,
            cancel,
            excludes,
        }
    }
}

/// Where a file's content comes from.
#[derive(Debug)]
enum Opener {
    /// Opened by path when the archiver gets to it.
    Path(PathBuf),
    /// Opened during the walk (a path too long to open by name).
    Open(File),
}

/// How to open one file; counts a failure.
#[derive(Debug)]
pub(super) struct CountingOpen {
    opener: Opener,
    rel: String,
    findings: Arc<Findings>,
    cancel: Cancel,
}

impl ReadSourceOpen for CountingOpen {
    type Reader = CountingReader;

    fn open(self) -> RusticResult<Self::Reader> {
        let opened = match self.opener {
            Opener::Open(f) => Ok(f),
            Opener::Path(p) => crate::sys::fs::open_regular(&p),
        };
        match opened {
            Ok(file) => Ok(CountingReader {
                file,
                rel: self.rel,
                findings: self.findings,
                cancel: self.cancel,
                failed: Cell::new(false),
            }),
            Err(e) => {
                self.findings.unreadable(format!("{}: {e}", self.rel));
                Err(RusticError::with_source(
                    ErrorKind::InputOutput,
                    "Failed to open file `{path}`.",
                    e,
                )
                .attach_context("path", self.rel.clone()))
            }
        }
    }
}

/// A file being read; counts bytes and a read error; stops on cancel.
#[derive(Debug)]
pub(super) struct CountingReader {
    file: File,
    rel: String,
    findings: Arc<Findings>,
    cancel: Cancel,
    failed: Cell<bool>,
}

impl CountingReader {
    /// Counts one read's outcome: bytes read, or the first error.
    fn counted(&self, r: io::Result<usize>) -> io::Result<usize> {
        match r {
            Ok(n) => {
                self.findings
                    .bytes_read
                    .fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if !self.failed.replace(true) {
                    self.findings.unreadable(format!("{}: {e}", self.rel));
                }
                Err(e)
            }
        }
    }

    fn stopped(&self) -> io::Result<()> {
        if self.cancel.check().is_err() {
            self.findings.cancelled.store(true, Ordering::SeqCst);
            // Not `Interrupted`: readers retry that kind forever.
            return Err(io::Error::other("run cancelled"));
        }
        Ok(())
    }
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stopped()?;
        let r = self.file.read(buf);
        self.counted(r)
    }
}

impl ReadAt for CountingReader {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.stopped()?;
        self.counted(ReadAt::read_at(&self.file, buf, offset))
    }

    fn sparse_reads(&self) {
        crate::sys::fs::advise_random(&self.file);
    }

    fn will_need(&self, offset: u64, len: u64) {
        crate::sys::fs::advise_willneed(&self.file, offset, len);
    }
}

type Item = RusticResult<ReadSourceEntry<CountingOpen>>;

impl ReadSource for CountingSource {
    type Open = CountingOpen;
    type Iter = Entries;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        let (tx, rx) = bounded(WALK_AHEAD);
        let mut walker = NodeWalker {
            root_dev: std::fs::metadata(&self.root).map_or(0, |m| m.dev()),
            root: self.root.clone(),
            owners: self.owners.clone(),
            findings: self.findings.clone(),
            cancel: self.cancel.clone(),
            tx,
        };
        let excludes = self.excludes.clone();
        std::thread::spawn(move || {
            let root = walker.root.clone();
            let (walked, excluded) = walk_excluding(&root, &mut walker, &excludes);
            if let Ok(mut x) = walker.findings.excluded.lock() {
                *x = excluded;
            }
            if let Err(e) = walked {
                // The archiver stopped listening (dropped the iterator), or
                // the root itself cannot be read.
                if e.kind() != io::ErrorKind::BrokenPipe {
                    walker.findings.unreadable(format!(".: {e}"));
                    let _ = walker.tx.send(Err(RusticError::with_source(
                        ErrorKind::InputOutput,
                        "Failed to walk `{path}`.",
                        e,
                    )
                    .attach_context("path", walker.root.display().to_string())));
                }
            }
        });
        Entries {
            rx,
            root: self.root.clone(),
            extras: self.extras.clone(),
            injected: self.extras.is_empty(),
            queue: Vec::new(),
            findings: self.findings.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

/// The walk, on its own thread, turning entries into restic nodes.
struct NodeWalker {
    root: PathBuf,
    root_dev: u64,
    owners: Arc<Owners>,
    findings: Arc<Findings>,
    cancel: Cancel,
    tx: Sender<Item>,
}

fn jiff(t: Timestamp) -> Option<rustic_core::jiff::Timestamp> {
    rustic_core::jiff::Timestamp::from_nanosecond(t.as_ns()).ok()
}

impl NodeWalker {
    fn send(&self, item: Item) -> io::Result<()> {
        self.tx
            .send(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the archiver stopped"))
    }

    /// The node rustic_core's own walker would make of `e` (same fields,
    /// so files are recognised as unchanged across versions), with the
    /// container's owner names.
    fn node(&self, e: &Entry<'_>, name: &OsStr) -> io::Result<Node> {
        let m = e.meta;
        let hardlinked = m.nlink > 1 && !m.is_dir();
        // rustic_core does not export its xattr type; its serde form is
        // restic's: `{"name": …, "value": <base64>}`.
        let extended_attributes = match e.xattrs() {
            Ok(x) => serde_json::from_value(serde_json::Value::Array(
                x.into_iter()
                    .map(|(name, value)| {
                        serde_json::json!({ "name": name, "value": BASE64.encode(value) })
                    })
                    .collect(),
            ))
            .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let meta = Metadata {
            mode: Some(to_go(m.kind, m.mode)),
            mtime: jiff(m.mtime),
            // rustic's default: the access time is not kept (it changes on
            // every read); the mtime stands in.
            atime: jiff(m.mtime),
            ctime: jiff(m.ctime),
            uid: Some(m.uid),
            gid: Some(m.gid),
            user: self.owners.user(m.uid).map(str::to_owned),
            group: self.owners.group(m.gid).map(str::to_owned),
            inode: m.ino,
            device_id: if hardlinked { m.dev } else { 0 },
            size: if m.is_dir() { 0 } else { m.size },
            links: if m.is_dir() { 0 } else { m.nlink },
            extended_attributes,
        };
        let node_type = match m.kind {
            Kind::Dir => NodeType::Dir,
            Kind::File => NodeType::File,
            Kind::Symlink => NodeType::from_link(Path::new(&e.read_link()?)),
            Kind::Block => NodeType::Dev { device: m.rdev },
            Kind::Char => NodeType::Chardev { device: m.rdev },
            Kind::Fifo => NodeType::Fifo,
            Kind::Socket => NodeType::Socket,
        };
        Ok(Node::new_node(name, node_type, meta))
    }
}

impl Visitor for NodeWalker {
    fn visit(&mut self, e: &Entry<'_>) -> io::Result<bool> {
        if self.cancel.check().is_err() {
            self.findings.cancelled.store(true, Ordering::SeqCst);
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "run cancelled"));
        }
        if e.rel == b"." {
            // The root is the snapshot's top tree itself, not an entry in it.
            return Ok(true);
        }
        let rel = &e.rel[2..];
        let path = self.root.join(OsStr::from_bytes(rel));
        if rel == RESERVED_DIR.as_bytes() {
            self.findings.reserved_clash.store(true, Ordering::SeqCst);
            return Ok(false);
        }
        let name = e.name();
        let shown = escape(rel);
        let node = match self.node(e, name) {
            Ok(n) => n,
            Err(err) => {
                self.findings.unreadable(format!("{shown}: {err}"));
                return Ok(false);
            }
        };
        let open = match e.meta.kind {
            Kind::File if path.as_os_str().len() >= LONG_PATH => match e.open() {
                Ok(f) => Some(Opener::Open(f)),
                Err(err) => {
                    self.findings.unreadable(format!("{shown}: {err}"));
                    return Ok(false);
                }
            },
            Kind::File => Some(Opener::Path(path.clone())),
            _ => None,
        };
        let open = open.map(|opener| CountingOpen {
            opener,
            rel: shown,
            findings: self.findings.clone(),
            cancel: self.cancel.clone(),
        });
        self.send(Ok(ReadSourceEntry { path, node, open }))?;
        // Other file systems mounted inside are not descended (as in tar
        // archives): the snapshot holds only its own volume.
        Ok(e.meta.dev == self.root_dev && !e.meta.mount_root)
    }

    fn problem(&mut self, rel: &[u8], what: &str, error: &io::Error) {
        let rel = rel.strip_prefix(b"./").unwrap_or(rel);
        self.findings
            .unreadable(format!("{}: {what}: {error}", escape(rel)));
    }
}

/// The walk, in path order, with the reserved folder put in its place.
pub(super) struct Entries {
    rx: Receiver<Item>,
    root: PathBuf,
    extras: Vec<Extra>,
    injected: bool,
    /// Entries to hand out before reading on (reversed).
    queue: Vec<Item>,
    findings: Arc<Findings>,
    cancel: Cancel,
}

fn meta(mode: u32, size: u64) -> Metadata {
    Metadata {
        mode: Some(mode),
        mtime: Some(rustic_core::jiff::Timestamp::now()),
        uid: Some(0),
        gid: Some(0),
        size,
        ..Default::default()
    }
}

impl Entries {
    /// The reserved folder and its files, in order.
    fn extras(&self) -> Vec<Item> {
        let dir = self.root.join(RESERVED_DIR);
        let mut out = vec![Ok(ReadSourceEntry {
            path: dir.clone(),
            node: Node::new_node(
                OsStr::new(RESERVED_DIR),
                NodeType::Dir,
                meta(GO_MODE_DIR | 0o700, 0),
            ),
            open: None,
        })];
        let mut extras = self.extras.clone();
        extras.sort_by_key(|e| e.name);
        for e in extras {
            let rel = format!("{RESERVED_DIR}/{}", e.name);
            match std::fs::metadata(&e.path) {
                Ok(m) => out.push(Ok(ReadSourceEntry {
                    path: dir.join(e.name),
                    node: Node::new_node(OsStr::new(e.name), NodeType::File, meta(0o600, m.len())),
                    open: Some(CountingOpen {
                        opener: Opener::Path(e.path.clone()),
                        rel,
                        findings: self.findings.clone(),
                        cancel: self.cancel.clone(),
                    }),
                })),
                Err(err) => {
                    self.findings
                        .unreadable(format!("{} ({rel}): {err}", escape_path(&e.path)));
                }
            }
        }
        out.reverse();
        out
    }

    /// First component below the root, if `path` is under it.
    fn top<'p>(&self, path: &'p Path) -> Option<&'p OsStr> {
        path.strip_prefix(&self.root).ok()?.iter().next()
    }
}

impl Iterator for Entries {
    type Item = Item;

    fn next(&mut self) -> Option<Self::Item> {
        if self.cancel.check().is_err() {
            // Stop walking: the snapshot being written is thrown away.
            self.findings.cancelled.store(true, Ordering::SeqCst);
            return None;
        }
        if let Some(e) = self.queue.pop() {
            return Some(e);
        }
        let item = match self.rx.recv() {
            Err(_) => {
                if !self.injected {
                    self.injected = true;
                    self.queue = self.extras();
                    return self.queue.pop();
                }
                return None;
            }
            Ok(Err(e)) => return Some(Err(e)),
            Ok(Ok(entry)) => entry,
        };
        let top = self.top(&item.path).map(|t| t.as_bytes().to_vec());
        if !self.injected && top.as_deref().is_some_and(|t| t > RESERVED_DIR.as_bytes()) {
            self.injected = true;
            let mut q = vec![Ok(item)];
            q.extend(self.extras());
            self.queue = q;
            return self.queue.pop();
        }
        Some(Ok(item))
    }
}
