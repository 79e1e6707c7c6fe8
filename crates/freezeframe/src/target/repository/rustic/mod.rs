//! The only place that speaks `rustic_core` (pinned to an exact version in
//! the workspace `Cargo.toml`): open and create repositories, list, stream
//! a snapshot out for restore, check, forget and prune. Backups are
//! written by freezeframe's own writer (`write`), which uses rustic_core's
//! backends and its types of the format's JSON files. An API change of
//! rustic_core touches this module only.
//!
//! All calls are blocking and made from plain threads; the S3 backend runs
//! its own private I/O runtime.

mod backup;
mod browse;
mod maintain;
mod s3;
mod source;
mod tar_stream;
pub mod view;
mod write;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rustic_backend::LocalBackend;
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    ConfigOptions, Credentials, Id, KeyOptions, OpenStatus, Repository, RepositoryBackends,
    RepositoryOptions, RusticError, WriteBackend,
};

use super::{RepoError, Selection, SnapshotInfo, PARTIAL_TAG, RESERVED_DIR, TAG};
use crate::config::{Location, RepositoryConfig};
use crate::sys::{Cancel, CommandRunner};
use crate::target::browse::{BrowsePath, LsEntry};
use crate::target::repository::read_password;

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The new repository's id.
    pub id: String,
    /// For object stores: whether conditional writes (`If-None-Match`) are
    /// honoured, so that two hosts cannot both create the repository.
    pub conditional_writes: Option<bool>,
}

type Opened = Option<Repository<OpenStatus>>;

/// An open repository: rustic_core's, for reading, checking and pruning,
/// and freezeframe's writer's view of the same backend.
pub struct Repo {
    location: String,
    open: Mutex<Opened>,
    /// Where backups write.
    store: write::Store,
    /// The blobs the repository holds (read ahead by [`Repo::preload_index`]
    /// or on the first backup, added to by each, brought up to date under
    /// each backup's lock).
    known: Arc<Mutex<Option<Arc<RwLock<write::Known>>>>>,
    /// What opening it again takes (for a long-lived reader).
    reopen: Reopen,
    /// How backups cut files into chunks (`target.chunk_size`).
    bounds: write::Bounds,
}

/// The backends, options and password a repository was opened with.
struct Reopen {
    be: RepositoryBackends,
    options: RepositoryOptions,
    password: String,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn full_hex(id: &Id) -> String {
    id.to_hex().to_string()
}

type Backends = (
    RepositoryBackends,
    (Arc<dyn WriteBackend>, Arc<dyn write::LockDir>),
    Option<s3::S3Backend>,
);

fn backends(location: &Location) -> Result<Backends, RepoError> {
    match location {
        Location::Local { path } => {
            let be = LocalBackend::new(path.to_string_lossy(), BTreeMap::<String, String>::new())
                .map_err(|e| {
                RepoError::Invalid(format!("repository {}: {e}", path.display()))
            })?;
            let be: Arc<dyn WriteBackend> = Arc::new(be);
            let locks: Arc<dyn write::LockDir> = Arc::new(write::LocalLocks(path.join("locks")));
            Ok((RepositoryBackends::new(be.clone(), None), (be, locks), None))
        }
        Location::S3(o) => {
            let s3 = s3::S3Backend::new(o)?;
            let be: Arc<dyn WriteBackend> = Arc::new(s3.clone());
            let locks: Arc<dyn write::LockDir> = Arc::new(s3.clone());
            Ok((
                RepositoryBackends::new(be.clone(), None),
                (be, locks),
                Some(s3),
            ))
        }
    }
}

fn options(cfg: &RepositoryConfig) -> RepositoryOptions {
    RepositoryOptions::default().cache_dir(cfg.cache_dir.clone())
}

impl Repo {
    fn err(&self, what: impl Into<String>, e: impl std::fmt::Display) -> RepoError {
        RepoError::Repository {
            location: self.location.clone(),
            what: what.into(),
            message: e.to_string(),
        }
    }

    /// A writer error as a repository error: a lock in the way is
    /// [`RepoError::Locked`].
    fn locked(&self, e: write::WriteError) -> RepoError {
        match e {
            write::WriteError::Locked(holder) => RepoError::Locked {
                location: self.location.clone(),
                holder,
            },
            e => self.err("locking", e),
        }
    }

    /// Takes a restic-format lock (exclusive for prune), refused while
    /// one in the way is held.
    pub(super) fn lock(&self, exclusive: bool) -> Result<write::HeldLock, RepoError> {
        write::lock(&self.store, exclusive).map_err(|e| self.locked(e))
    }

    /// Limits pack uploads to `rate` bytes/s (`None`: no limit), for the
    /// backups that follow.
    pub fn set_bwlimit(&self, rate: Option<u64>) {
        self.store.limit.set_rate(rate);
    }

    /// Holds pack uploads (`true`) until released (`false`).
    pub fn hold_writes(&self, held: bool) {
        self.store.limit.hold(held);
    }

    /// Removes this host's repository locks whose process is gone (a
    /// backup that was killed); returns how many.
    pub fn remove_stale_locks(&self) -> Result<usize, RepoError> {
        write::remove_stale_own(&self.store).map_err(|e| self.err("removing stale locks", e))
    }

    /// Creates a new repository at `spec.location`. Refuses if one exists.
    /// A password command runs through `runner`.
    pub fn init(
        spec: &RepositoryConfig,
        runner: &dyn CommandRunner,
    ) -> Result<InitReport, RepoError> {
        let location = spec.location.describe();
        let fail = |what: &str, e: Box<RusticError>| RepoError::Repository {
            location: location.clone(),
            what: what.into(),
            message: e.to_string(),
        };
        let password = read_password(&spec.password, runner)?;
        if let Location::Local { path } = &spec.location {
            std::fs::create_dir_all(path).map_err(|e| {
                RepoError::Invalid(format!(
                    "creating repository folder {}: {e}",
                    path.display()
                ))
            })?;
        }
        let (be, _, s3) = backends(&spec.location)?;
        let conditional_writes = match &s3 {
            Some(s3) => Some(s3.honours_conditional_writes()?),
            None => None,
        };
        let repo = Repository::new(&options(spec), &be).map_err(|e| fail("opening", e))?;
        if repo
            .config_id()
            .map_err(|e| fail("looking for a config", e))?
            .is_some()
        {
            return Err(RepoError::Invalid(format!(
                "repository {location} already exists; use it as it is, or choose another location"
            )));
        }
        let repo = repo
            .init(
                &Credentials::password(&password),
                &KeyOptions::default(),
                &ConfigOptions::default().set_compression(spec.compression),
            )
            .map_err(|e| fail("creating", e))?;
        Ok(InitReport {
            id: full_hex(&repo.config().id),
            conditional_writes,
        })
    }

    /// Opens the repository (the password is checked now; a password
    /// command runs through `runner`).
    pub fn open(spec: &RepositoryConfig, runner: &dyn CommandRunner) -> Result<Self, RepoError> {
        let location = spec.location.describe();
        let password = read_password(&spec.password, runner)?;
        let (be, raw, _) = backends(&spec.location)?;
        let fail = |e: Box<RusticError>| {
            RepoError::Open {
            location: location.clone(),
            message: format!(
                "cannot open: {e}; is it a repository (`freezeframe init` creates one) and is the password from {} right?",
                spec.password.describe()
            ),
        }
        };
        let repo = Repository::new(&options(spec), &be)
            .map_err(&fail)?
            .open(&Credentials::password(&password))
            .map_err(&fail)?;
        let store = write::Store::new(raw.0, raw.1, &repo.key(), repo.config()).map_err(|e| {
            RepoError::Open {
                location: location.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(Self {
            location,
            open: Mutex::new(Some(repo)),
            store,
            known: Arc::new(Mutex::new(None)),
            bounds: write::Bounds::around(
                usize::try_from(spec.chunk_size).unwrap_or(write::Bounds::RESTIC.avg),
            ),
            reopen: Reopen {
                be,
                options: options(spec),
                password,
            },
        })
    }

    /// A reader of the whole repository that lives as long as its users
    /// (`freezeframe mount`): opened again with its index read, holding a
    /// non-exclusive restic lock so that a `restic prune` waits.
    pub fn reader(&self) -> Result<Arc<view::Reader>, RepoError> {
        let lock = self.lock(false)?;
        let repo = Repository::new(&self.reopen.options, &self.reopen.be)
            .and_then(|r| r.open(&Credentials::password(&self.reopen.password)))
            .and_then(|r| r.to_indexed())
            .map_err(|e| self.err("opening for reading", e))?;
        Ok(Arc::new(view::Reader::new(repo, lock)))
    }

    /// A snapshot's tree, as a [`crate::target::view::BackupView`].
    pub fn view(
        &self,
        reader: &Arc<view::Reader>,
        snapshot: &SnapshotInfo,
    ) -> Result<view::RepoView, RepoError> {
        let snap = self.load(snapshot)?;
        Ok(view::RepoView::new(reader.clone(), snap.tree))
    }

    /// The repository, as messages name it.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The open repository, locked.
    fn opened(&self) -> Result<MutexGuard<'_, Opened>, RepoError> {
        self.open
            .lock()
            .map_err(|_| self.err("locking", "poisoned"))
    }

    /// Runs `f` on the open (unindexed) repository.
    fn with_open<T>(
        &self,
        f: impl FnOnce(&Repository<OpenStatus>) -> Result<T, RepoError>,
    ) -> Result<T, RepoError> {
        let o = self.opened()?;
        let repo = o
            .as_ref()
            .ok_or_else(|| self.err("opening", "repository lost"))?;
        f(repo)
    }

    /// Starts reading the index files in the background, while the run
    /// freezes and snapshots its first containers; the first backup takes
    /// what it read (waiting for the rest) and brings it up to date under
    /// its lock. A failure is left for that backup to meet and report.
    pub fn preload_index(&self) {
        let (slot, store) = (self.known.clone(), self.store.clone());
        std::thread::spawn(move || {
            let Ok(mut k) = slot.lock() else { return };
            if k.is_none() {
                *k = write::Known::load(&store)
                    .ok()
                    .map(|known| Arc::new(RwLock::new(known)));
            }
        });
    }

    /// The blobs the repository holds: read from its index files once,
    /// then only the index files new since (or all again, if one read
    /// before is gone). Called under the backup's repository lock: a prune
    /// that ran before it cannot leave a blob known that is gone.
    fn known(&self) -> Result<Arc<RwLock<write::Known>>, RepoError> {
        let mut k = self
            .known
            .lock()
            .map_err(|_| self.err("locking", "poisoned"))?;
        if let Some(known) = &*k {
            let mut w = known
                .write()
                .map_err(|_| self.err("locking the index", "poisoned"))?;
            let reread = w
                .refresh(&self.store)
                .map_err(|e| self.err("reading the index", e))?;
            if reread {
                tracing::info!(
                    "repository {}: index files were replaced since they were read (a prune?): all read again",
                    self.location
                );
            }
            return Ok(known.clone());
        }
        let known = Arc::new(RwLock::new(
            write::Known::load(&self.store).map_err(|e| self.err("reading the index", e))?,
        ));
        *k = Some(known.clone());
        Ok(known)
    }

    /// Removes a snapshot this run wrote (the snapshot it was read from
    /// turned out invalid, or the run was stopped).
    pub fn discard(&self, snapshot: &str) -> Result<(), RepoError> {
        let id: Id = snapshot
            .parse()
            .map_err(|e: Box<RusticError>| e)
            .map_err(|e| self.err("parsing a snapshot id", e))?;
        self.with_open(|repo| {
            repo.delete_snapshots(&[id.into()])
                .map_err(|e| self.err("removing a snapshot", e))
        })
    }

    fn all_snapshots(&self) -> Result<Vec<SnapshotFile>, RepoError> {
        self.with_open(|repo| {
            let mut v: Vec<SnapshotFile> = repo
                .get_all_snapshots()
                .map_err(|e| self.err("listing snapshots", e))?
                .into_iter()
                .filter(|s| s.tags.contains(TAG))
                .collect();
            v.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.label.cmp(&b.label)));
            Ok(v)
        })
    }

    /// freezeframe's snapshots, oldest first (of one container if given).
    pub fn snapshots(&self, container: Option<&str>) -> Result<Vec<SnapshotInfo>, RepoError> {
        Ok(self
            .all_snapshots()?
            .iter()
            .filter(|s| container.is_none_or(|c| s.label == c))
            .map(info)
            .collect())
    }

    fn select(&self, sel: &Selection<'_>) -> Result<SnapshotFile, RepoError> {
        let mine: Vec<SnapshotFile> = self
            .all_snapshots()?
            .into_iter()
            .filter(|s| s.label == sel.container)
            .collect();
        let not_found = |m: String| RepoError::NotFound {
            location: self.location.clone(),
            message: m,
        };
        match sel.which {
            // The newest complete one of this host; a partial one only
            // when named. Another host's container of the same id is not
            // taken for this one unless named (`--run`, or an id).
            None => {
                let host = crate::sys::host_name();
                let others: std::collections::BTreeSet<String> = mine
                    .iter()
                    .filter(|s| s.hostname != host)
                    .map(|s| s.hostname.clone())
                    .collect();
                let mine: Vec<SnapshotFile> =
                    mine.into_iter().filter(|s| s.hostname == host).collect();
                if mine.is_empty() && !others.is_empty() {
                    return Err(RepoError::OtherHostsOnly {
                        location: self.location.clone(),
                        message: format!(
                        "container {} has no snapshot from this host ({host}), only from {}; name one with --run (`freezeframe list` shows them)",
                        sel.container,
                        others.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                    });
                }
                let partial = |s: &SnapshotFile| s.tags.contains(PARTIAL_TAG);
                let newest_partial = mine.iter().rev().find(|s| partial(s)).map(info);
                mine.into_iter().rev().find(|s| !partial(s)).ok_or_else(|| {
                    not_found(match newest_partial {
                        Some(p) => format!(
                            "container {} has only partial snapshots (the newest: {} of run {}); name one with --run to restore it anyway",
                            sel.container,
                            &p.id[..8.min(p.id.len())],
                            p.run.as_deref().unwrap_or("?")
                        ),
                        None => format!(
                            "no snapshot of container {}; `freezeframe list` shows what there is",
                            sel.container
                        ),
                    })
                })
            }
            Some(w) => {
                let run_tag = format!("run:{w}");
                let hits: Vec<SnapshotFile> = mine
                    .into_iter()
                    .filter(|s| s.tags.contains(&run_tag) || full_hex(&s.id).starts_with(w))
                    .collect();
                match hits.len() {
                    1 => Ok(hits.into_iter().next().expect("one element")),
                    0 => Err(not_found(format!(
                        "container {} has no snapshot of run or id `{w}`; `freezeframe list` shows what there is",
                        sel.container
                    ))),
                    n => Err(not_found(format!(
                        "`{w}` matches {n} snapshots of container {}; give more of the id",
                        sel.container
                    ))),
                }
            }
        }
    }

    /// Finds the snapshot `sel` names.
    pub fn find(&self, sel: &Selection<'_>) -> Result<SnapshotInfo, RepoError> {
        self.select(sel).map(|s| info(&s))
    }

    /// Reads the one snapshot file `snapshot` names (no listing).
    fn load(&self, snapshot: &SnapshotInfo) -> Result<SnapshotFile, RepoError> {
        self.with_open(|repo| {
            repo.get_snapshots(&[&snapshot.id])
                .map_err(|e| self.err(format!("reading snapshot {}", snapshot.id), e))?
                .into_iter()
                .next()
                .ok_or_else(|| self.err(format!("reading snapshot {}", snapshot.id), "not found"))
        })
    }

    /// Checks, before anything is written, that every `include` path is in
    /// the snapshot and reached through folders only.
    pub fn check_includes(
        &self,
        snapshot: &SnapshotInfo,
        include: &[BrowsePath],
    ) -> Result<(), RepoError> {
        if include.is_empty() {
            return Ok(());
        }
        let snap = self.load(snapshot)?;
        self.with_indexed(|repo| {
            for i in include {
                browse::find(repo, snap.tree, i).map_err(|e| self.located(e))?;
            }
            Ok(())
        })
    }

    /// The entries of the snapshot at and below `under`.
    pub fn ls(
        &self,
        snapshot: &SnapshotInfo,
        under: Option<&BrowsePath>,
    ) -> Result<Vec<LsEntry>, RepoError> {
        let snap = self.load(snapshot)?;
        self.with_indexed(|repo| browse::ls(repo, snap.tree, under).map_err(|e| self.located(e)))
    }

    /// Writes the content of the file at `path` of the snapshot to `out`.
    pub fn cat(
        &self,
        snapshot: &SnapshotInfo,
        path: &BrowsePath,
        out: &mut dyn Write,
    ) -> Result<u64, RepoError> {
        let snap = self.load(snapshot)?;
        self.with_indexed(|repo| {
            browse::cat(repo, snap.tree, path, out).map_err(|e| self.located(e))
        })
    }

    /// Names this repository in a not-found error made without it.
    fn located(&self, e: RepoError) -> RepoError {
        match e {
            RepoError::NotFound { message, .. } => RepoError::NotFound {
                location: self.location.clone(),
                message,
            },
            e => e,
        }
    }

    /// Streams the snapshot's tree (without the reserved folder) to `out` as
    /// a tar stream — all of it, or the `include` paths — and returns what
    /// is stored beside it.
    pub fn stream_tree(
        &self,
        snapshot: &SnapshotInfo,
        out: impl Write,
        cancel: &Cancel,
        include: &[BrowsePath],
    ) -> Result<super::RestoredSnapshot, RepoError> {
        let snap = self.load(snapshot)?;
        self.with_indexed(|repo| {
            let (config, has_dump) = reserved(repo, &snap, &self.location)?;
            tar_stream::write_tree(repo, snap.tree, out, cancel, include).map_err(|e| match e {
                tar_stream::StreamError::Write(w) => RepoError::StreamClosed(w.to_string()),
                e => self.err(format!("restoring snapshot {}", snapshot.id), e),
            })?;
            Ok(super::RestoredSnapshot { config, has_dump })
        })
    }

    /// Writes the memory dump stored with the snapshot to `out`.
    pub fn write_dump(
        &self,
        snapshot: &SnapshotInfo,
        out: &mut impl Write,
    ) -> Result<(), RepoError> {
        let snap = self.load(snapshot)?;
        self.with_indexed(|repo| {
            let node = repo
                .node_from_path(snap.tree, &PathBuf::from(RESERVED_DIR).join("dump"))
                .map_err(|e| self.err("finding the memory dump", e))?;
            repo.dump(&node, out)
                .map_err(|e| self.err("reading the memory dump", e))
        })
    }

    fn with_indexed<T>(
        &self,
        f: impl FnOnce(&Repository<rustic_core::IndexedFullStatus>) -> Result<T, RepoError>,
    ) -> Result<T, RepoError> {
        let mut o = self.opened()?;
        let open = o
            .take()
            .ok_or_else(|| self.err("opening", "repository lost"))?;
        let indexed = match open.to_indexed() {
            Ok(r) => r,
            Err(e) => return Err(self.err("reading the index", e)),
        };
        let r = f(&indexed);
        *o = Some(indexed.drop_index());
        r
    }
}

/// The stored config file (small: read whole) and whether a dump is there.
fn reserved(
    repo: &Repository<rustic_core::IndexedFullStatus>,
    snap: &SnapshotFile,
    location: &str,
) -> Result<(Option<Vec<u8>>, bool), RepoError> {
    const CONFIG_MAX: u64 = 16 << 20;
    let dir = match repo.node_from_path(snap.tree, std::path::Path::new(RESERVED_DIR)) {
        Ok(n) => n,
        Err(_) => return Ok((None, false)),
    };
    let Some(sub) = dir.subtree else {
        return Ok((None, false));
    };
    let tree = repo.get_tree(&sub).map_err(|e| RepoError::Repository {
        location: location.to_owned(),
        what: "reading the stored config".into(),
        message: e.to_string(),
    })?;
    let mut config = None;
    let mut has_dump = false;
    for n in &tree.nodes {
        match n.name().to_str() {
            Some("config") if n.meta.size <= CONFIG_MAX => {
                let mut buf = Vec::new();
                repo.dump(n, &mut buf).map_err(|e| RepoError::Repository {
                    location: location.to_owned(),
                    what: "reading the stored config".into(),
                    message: e.to_string(),
                })?;
                config = Some(buf);
            }
            Some("dump") => has_dump = true,
            _ => {}
        }
    }
    Ok((config, has_dump))
}

fn info(s: &SnapshotFile) -> SnapshotInfo {
    let tags: Vec<String> = (&s.tags).into_iter().cloned().collect();
    let sum = s.summary.clone().unwrap_or_default();
    SnapshotInfo {
        id: full_hex(&s.id),
        time: s
            .time
            .timestamp()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        host: s.hostname.clone(),
        container: s.label.clone(),
        run: tags
            .iter()
            .find_map(|t| t.strip_prefix("run:").map(str::to_owned)),
        partial: tags.iter().any(|t| t == PARTIAL_TAG),
        missing: s
            .description
            .as_deref()
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.strip_prefix(backup::MISSING_PREFIX).map(str::to_owned))
            .collect(),
        tags,
        files: sum.total_files_processed,
        bytes: sum.total_bytes_processed,
        bytes_added: sum.data_added,
    }
}
