//! The backup source: rustic's local walker over the snapshot mount,
//! wrapped so that every file that cannot be opened or read is counted on
//! our side (rustic_core only logs it and saves the snapshot as if
//! complete), and so that the container's config file and memory dump are
//! added under the reserved top-level folder. A source can be one part of a
//! split container (see `repo::split`): every folder, but only its files.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{
    ErrorKind, Excludes, LocalSource, LocalSourceFilterOptions, LocalSourceSaveOptions, ReadSource,
    ReadSourceEntry, ReadSourceOpen, RusticError, RusticResult,
};

use crate::repo::split::Split;
use crate::repo::RESERVED_DIR;
use crate::sys::Cancel;

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

/// Which files of a split container a source reads.
#[derive(Debug, Clone)]
pub(super) struct Part {
    /// The assignment of files to parts.
    pub split: Arc<Split>,
    /// This source's part.
    pub index: usize,
}

/// The container's private area (or one part of it) plus the extras.
pub(super) struct CountingSource {
    inner: LocalSource,
    root: PathBuf,
    extras: Vec<Extra>,
    findings: Arc<Findings>,
    cancel: Cancel,
    part: Part,
}

impl CountingSource {
    pub(super) fn new(
        root: &Path,
        extras: Vec<Extra>,
        findings: Arc<Findings>,
        cancel: Cancel,
        part: Part,
    ) -> RusticResult<Self> {
        let inner = LocalSource::new(
            LocalSourceSaveOptions::default(),
            &Excludes::default(),
            &LocalSourceFilterOptions::default(),
            &[root],
        )?;
        Ok(Self {
            inner,
            root: root.to_owned(),
            extras,
            findings,
            cancel,
            part,
        })
    }
}

/// How to open one file; counts a failure.
#[derive(Debug)]
pub(super) struct CountingOpen {
    path: PathBuf,
    rel: String,
    findings: Arc<Findings>,
    cancel: Cancel,
}

impl ReadSourceOpen for CountingOpen {
    type Reader = CountingReader;

    fn open(self) -> RusticResult<Self::Reader> {
        match File::open(&self.path) {
            Ok(file) => Ok(CountingReader {
                file,
                rel: self.rel,
                findings: self.findings,
                cancel: self.cancel,
                failed: false,
            }),
            Err(e) => {
                self.findings.unreadable(format!("{}: {e}", self.rel));
                Err(RusticError::with_source(
                    ErrorKind::InputOutput,
                    "Failed to open file `{path}`.",
                    e,
                )
                .attach_context("path", self.path.display().to_string()))
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
    failed: bool,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.check().is_err() {
            self.findings.cancelled.store(true, Ordering::SeqCst);
            // Not `Interrupted`: readers retry that kind forever.
            return Err(io::Error::other("run cancelled"));
        }
        match self.file.read(buf) {
            Ok(n) => {
                self.findings
                    .bytes_read
                    .fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if !self.failed {
                    self.failed = true;
                    self.findings.unreadable(format!("{}: {e}", self.rel));
                }
                Err(e)
            }
        }
    }
}

impl ReadSource for CountingSource {
    type Open = CountingOpen;
    type Iter = Entries;

    fn size(&self) -> RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        Entries {
            inner: self.inner.entries(),
            root: self.root.clone(),
            extras: self.extras.clone(),
            injected: self.extras.is_empty(),
            queue: Vec::new(),
            findings: self.findings.clone(),
            cancel: self.cancel.clone(),
            part: self.part.clone(),
        }
    }
}

type Inner = <LocalSource as ReadSource>::Iter;

/// The walk, in path order, with the reserved folder put in its place.
pub(super) struct Entries {
    inner: Inner,
    root: PathBuf,
    extras: Vec<Extra>,
    injected: bool,
    /// Entries to hand out before reading on (reversed).
    queue: Vec<RusticResult<ReadSourceEntry<CountingOpen>>>,
    findings: Arc<Findings>,
    cancel: Cancel,
    part: Part,
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
    fn open_for(&self, path: &Path, rel: String) -> CountingOpen {
        CountingOpen {
            path: path.to_owned(),
            rel,
            findings: self.findings.clone(),
            cancel: self.cancel.clone(),
        }
    }

    /// The reserved folder and its files, in order.
    fn extras(&self) -> Vec<RusticResult<ReadSourceEntry<CountingOpen>>> {
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
                    open: Some(self.open_for(&e.path, rel)),
                })),
                Err(err) => {
                    self.findings
                        .unreadable(format!("{} ({rel}): {err}", e.path.display()));
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
    type Item = RusticResult<ReadSourceEntry<CountingOpen>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.cancel.check().is_err() {
                // Stop walking: the snapshot being written is thrown away.
                self.findings.cancelled.store(true, Ordering::SeqCst);
                return None;
            }
            if let Some(e) = self.queue.pop() {
                return Some(e);
            }
            let item = match self.inner.next() {
                None => {
                    if !self.injected {
                        self.injected = true;
                        self.queue = self.extras();
                        return self.queue.pop();
                    }
                    return None;
                }
                Some(Err(e)) => {
                    // A folder that cannot be listed: its contents are
                    // missing. Every part sees it; part 0 reports it.
                    if self.part.index == 0 {
                        self.findings.unreadable(format!("{e}"));
                    }
                    return Some(Err(e));
                }
                Some(Ok(entry)) => entry,
            };
            let top = self.top(&item.path).map(|t| t.as_bytes().to_vec());
            if top.as_deref() == Some(RESERVED_DIR.as_bytes()) {
                self.findings.reserved_clash.store(true, Ordering::SeqCst);
                continue;
            }
            if !item.node.is_dir() && self.part.split.part_of(&item.path) != self.part.index {
                continue;
            }
            let rel = item
                .path
                .strip_prefix(&self.root)
                .unwrap_or(&item.path)
                .display()
                .to_string();
            let open = item.open.as_ref().map(|_| self.open_for(&item.path, rel));
            let converted = ReadSourceEntry {
                path: item.path,
                node: item.node,
                open,
            };
            if !self.injected && top.as_deref().is_some_and(|t| t > RESERVED_DIR.as_bytes()) {
                self.injected = true;
                let mut q = vec![Ok(converted)];
                q.extend(self.extras());
                self.queue = q;
                return self.queue.pop();
            }
            return Some(Ok(converted));
        }
    }
}
