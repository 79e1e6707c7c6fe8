//! Backing up one container: freezeframe's own writer (`write`) stores the
//! tree and its blobs, then the index files; the snapshot file is written
//! last, so a crash leaves no snapshot that points at missing data.
//!
//! Older versions split a large container into temporary part snapshots
//! tagged `freezeframe-part`; a backup of the container on this host
//! still removes any such leftovers.

use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rustic_core::jiff::{Unit, Zoned};
use rustic_core::repofile::{SnapshotFile, SnapshotId, SnapshotSummary};
use rustic_core::{FileType, Id, ReadSource, RusticError, SnapshotOptions, TreeId};

use super::source::{CountingSource, Extra, Findings};
use super::write::{self, hex, Wrote};
use super::{full_hex, Repo};
use crate::target::repository::{
    ExtentRecord, RepoBackupRecord, RepoError, PARTIAL_TAG, RESERVED_DIR, TAG,
};
use crate::target::{ChangedFiles, ContainerJob, SourceId};

/// Lines of a partial snapshot's description naming what could not be read.
pub(super) const MISSING_PREFIX: &str = "missing: ";
/// The description line naming the snapshot a backup was read from (its
/// [`SourceId::text`]).
const FROM_PREFIX: &str = "from-snapshot: ";
/// The same line as versions before LVM-thin bases wrote it (btrfs only).
const OLD_FROM_PREFIX: &str = "from-btrfs: ";
/// The description line with the chunk bounds files were cut with
/// (`min avg max`, bytes); a snapshot without it was cut with restic's.
const CHUNKS_PREFIX: &str = "chunks-fastcdc: ";
/// Most such lines (the run's manifest lists them all).
const MAX_MISSING_LINES: usize = 100;

/// The tag of older versions' temporary per-part snapshots.
pub(super) const PART_TAG: &str = "freezeframe-part";

impl Repo {
    /// Backs up one container as one snapshot. Files that cannot be read
    /// are listed in the record (and the snapshot is tagged `partial`);
    /// a cancelled backup leaves no snapshot.
    pub fn backup(&self, req: &ContainerJob<'_>) -> Result<RepoBackupRecord, RepoError> {
        let t0 = Instant::now();
        let start = Zoned::now();
        let findings = Arc::new(Findings::default());
        let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        // Held until the snapshot is saved: a prune elsewhere refuses.
        let _lock = self.lock(false)?;
        // The first progress call is where the `mid-archive` fault point
        // and a cancelled run are noticed.
        (req.progress)(0).map_err(|_| RepoError::Interrupted)?;
        let (parent, leftovers) = self.parent_and_leftovers(req)?;
        self.remove(&leftovers)?;
        let known = self.known()?;
        let src = CountingSource::new(
            req.source,
            extras(req),
            findings.clone(),
            req.cancel.clone(),
            req.excludes.clone(),
        );
        // A parent cut with other bounds is not built on: its blob lists
        // are not where this run would cut, so every file is read once.
        let recut = parent
            .as_ref()
            .map(|p| (p, cut_with(p)))
            .filter(|(_, was)| *was != self.bounds)
            .map(|(p, was)| recut_note(p, was, self.bounds));
        if let Some(note) = &recut {
            tracing::info!(container = %req.id, "{note}: every file is read");
        }
        let parent_root = parent
            .as_ref()
            .filter(|_| recut.is_none())
            .map(|p| write::id_bytes(&p.tree.into_inner()));
        let stopped = || findings.cancelled.load(Ordering::SeqCst) || req.cancel.check().is_err();
        let (hints, extents_note) = match recut {
            Some(note) => (None, req.changes.map(|_| note)),
            None => paired(req, parent.as_ref()),
        };
        let written = write::write_tree(
            &self.store,
            &known,
            write::Source {
                root: req.source,
                entries: src.entries(),
                workers,
                bounds: self.bounds,
                stopped: &stopped,
                hints,
            },
            parent_root,
        );
        if stopped() {
            return Err(RepoError::Interrupted);
        }
        let wrote = written.map_err(|e| self.err(format!("backing up {}", req.id), e))?;
        for w in &wrote.warnings {
            tracing::warn!(container = %req.id, "{w}");
        }
        if findings.reserved_clash.load(Ordering::SeqCst) {
            return Err(RepoError::Invalid(format!(
                "container {} has a top-level `{RESERVED_DIR}` in {}, a name freezeframe reserves for the config and memory dump in repository snapshots; rename it, or back this container up to a tar target",
                req.id,
                req.source.display()
            )));
        }
        let mut unreadable = findings
            .unreadable
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        unreadable.sort();
        unreadable.dedup();
        let snap = self.save_snapshot(req, &wrote, parent.as_ref(), &unreadable, start)?;
        Ok(RepoBackupRecord {
            snapshot: snap,
            parent: parent.map(|p| full_hex(&p.id)),
            files_new: wrote.files_new,
            files_changed: wrote.files_changed,
            files_unchanged: wrote.files_unchanged,
            bytes_read: findings.bytes_read.load(Ordering::Relaxed),
            bytes_added: wrote.data_bytes + wrote.trees.bytes,
            bytes_added_packed: wrote.data_stored + wrote.trees.stored,
            data_blobs_added: wrote.data_blobs,
            extents: extents_record(req, &wrote, extents_note),
            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
            unreadable,
            excluded: findings
                .excluded
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
        })
    }

    /// The snapshot (complete or partial) of this container from this
    /// host whose unchanged files are not read again: the newest one read
    /// from the kernel's base when there is one (after a run killed before
    /// its base swap, the newest backup was read from a snapshot that is
    /// gone, and the one before it pairs with the base), else the newest.
    /// Also the part snapshots of this container an older version left on
    /// this host.
    fn parent_and_leftovers(
        &self,
        req: &ContainerJob<'_>,
    ) -> Result<(Option<SnapshotFile>, Vec<SnapshotFile>), RepoError> {
        let ct = format!("ct:{}", req.id);
        let mut parent: Option<SnapshotFile> = None;
        let mut from_base: Option<SnapshotFile> = None;
        let mut leftovers = Vec::new();
        let all = self.with_open(|repo| {
            repo.get_all_snapshots()
                .map_err(|e| self.err("listing snapshots", e))
        })?;
        for s in all {
            if s.hostname != req.host {
                continue;
            }
            if s.tags.contains(PART_TAG) && s.tags.contains(&ct) {
                leftovers.push(s);
            } else if s.tags.contains(TAG) && s.label == req.id.as_str() {
                let newer =
                    |than: &Option<SnapshotFile>| than.as_ref().is_none_or(|p| s.time > p.time);
                if req
                    .changes
                    .is_some_and(|c| read_from(&s).as_ref() == Some(&c.base))
                    && newer(&from_base)
                {
                    from_base = Some(s.clone());
                }
                if newer(&parent) {
                    parent = Some(s);
                }
            }
        }
        if let (Some(b), Some(p)) = (&from_base, &parent) {
            if b.id != p.id {
                tracing::info!(
                    container = %req.id,
                    "parent backup {}, the newest read from the base; the newest, {}, was read from another snapshot",
                    &full_hex(&b.id)[..8],
                    &full_hex(&p.id)[..8]
                );
            }
        }
        Ok((from_base.or(parent), leftovers))
    }

    fn remove(&self, snaps: &[SnapshotFile]) -> Result<(), RepoError> {
        if snaps.is_empty() {
            return Ok(());
        }
        let ids: Vec<SnapshotId> = snaps.iter().map(|s| s.id).collect();
        self.with_open(|repo| {
            repo.delete_snapshots(&ids)
                .map_err(|e| self.err("removing older versions' part snapshots", e))
        })
    }

    /// Writes the container's snapshot file (after everything it names);
    /// returns its id.
    fn save_snapshot(
        &self,
        req: &ContainerJob<'_>,
        wrote: &Wrote,
        parent: Option<&SnapshotFile>,
        unreadable: &[String],
        start: Zoned,
    ) -> Result<String, RepoError> {
        let mut opts = snapshot_options(req, TAG).map_err(|e| self.err("tagging", e))?;
        if !unreadable.is_empty() {
            opts = opts
                .add_tags(PARTIAL_TAG)
                .map_err(|e| self.err("tagging", e))?;
        }
        let mut snap = opts.to_snapshot().map_err(|e| self.err("preparing", e))?;
        let b = self.bounds;
        let mut d = snap.description.take().unwrap_or_default();
        d.push_str(&format!("\n{CHUNKS_PREFIX}{} {} {}", b.min, b.avg, b.max));
        if let Some(src) = req.source_id {
            d.push_str(&format!("\n{FROM_PREFIX}{}", src.text()));
        }
        // What is missing travels with the snapshot: a restore of it says
        // so without the run's manifest.
        for u in unreadable.iter().take(MAX_MISSING_LINES) {
            d.push_str(&format!("\n{MISSING_PREFIX}{}", u.replace('\n', "\\n")));
        }
        if unreadable.len() > MAX_MISSING_LINES {
            d.push_str(&format!(
                "\n{MISSING_PREFIX}… {} more (see the run's manifest)",
                unreadable.len() - MAX_MISSING_LINES
            ));
        }
        snap.description = Some(d);
        snap.time = start.clone();
        snap.tree = TreeId::from(Id::new(wrote.tree));
        snap.paths = rustic_core::StringList::default();
        snap.paths.add("/".into());
        snap.parent = parent.map(|p| p.id);
        snap.parents = parent.map(|p| vec![p.id]).unwrap_or_default();
        snap.summary = Some(summary(wrote, &start));
        let json = serde_json::to_vec(&snap).map_err(|e| self.err("preparing the snapshot", e))?;
        let id = self
            .store
            .write_json(FileType::Snapshot, &json)
            .map_err(|e| self.err("saving the snapshot", e))?;
        Ok(hex(&id))
    }
}

/// The btrfs snapshot a backup was read from, as its description says.
fn read_from(s: &SnapshotFile) -> Option<SourceId> {
    s.description
        .as_deref()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(FROM_PREFIX)
                .or_else(|| l.strip_prefix(OLD_FROM_PREFIX))
        })
        .and_then(SourceId::parse)
}

/// The chunk bounds a snapshot's files were cut with.
fn cut_with(s: &SnapshotFile) -> write::Bounds {
    let line = s
        .description
        .as_deref()
        .and_then(|d| d.lines().find_map(|l| l.strip_prefix(CHUNKS_PREFIX)));
    let Some(line) = line else {
        return write::Bounds::RESTIC;
    };
    let n: Vec<usize> = line.split(' ').map_while(|n| n.parse().ok()).collect();
    match n[..] {
        [min, avg, max] => write::Bounds { min, avg, max },
        // Unreadable: nothing cut with known bounds matches it.
        _ => write::Bounds {
            min: 0,
            avg: 0,
            max: 0,
        },
    }
}

/// Why the parent's blob lists (cut with `was`) are not built on.
fn recut_note(parent: &SnapshotFile, was: write::Bounds, bounds: write::Bounds) -> String {
    format!(
        "the parent backup {} was cut into chunks of {} bytes on average, this one is cut into chunks of {} (target.chunk_size changed)",
        &full_hex(&parent.id)[..8],
        was.avg,
        bounds.avg
    )
}

/// The kernel's changes, if the parent backup was read from exactly their
/// base; else why not (for the report).
fn paired<'a>(
    req: &ContainerJob<'a>,
    parent: Option<&SnapshotFile>,
) -> (Option<&'a ChangedFiles>, Option<String>) {
    let Some(c) = req.changes else {
        return (None, None);
    };
    let why = match parent.map(|p| (p, read_from(p))) {
        None => "no parent backup".to_owned(),
        Some((_, None)) => "the parent backup does not say which snapshot it was read from".into(),
        Some((_, Some(from))) if from == c.base => return (Some(&c.files), None),
        Some((p, Some(from))) => format!(
            "the parent backup {} was read from {}, not from the base {}",
            &full_hex(&p.id)[..8],
            from.text(),
            c.base.text()
        ),
    };
    (None, Some(why))
}

/// What the extent path did, for the record (none when it was not
/// offered).
fn extents_record(
    req: &ContainerJob<'_>,
    wrote: &Wrote,
    not_used: Option<String>,
) -> Option<ExtentRecord> {
    let c = req.changes?;
    let e = &wrote.extents;
    Some(ExtentRecord {
        base: c.base.text(),
        not_used,
        files: e.files,
        changed_bytes: e.changed_bytes,
        fallbacks: e
            .fallbacks
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        examples: e.examples.clone(),
    })
}

/// Label, host, tags and description of the container's snapshot (with
/// `kind` as the first tag: `freezeframe`, or the part tag).
fn snapshot_options(
    req: &ContainerJob<'_>,
    kind: &str,
) -> Result<SnapshotOptions, Box<RusticError>> {
    let mut o = SnapshotOptions::default()
        .label(req.id.to_string())
        .host(req.host.to_owned())
        .command("freezeframe backup".to_owned())
        .add_tags(&format!("{kind},ct:{},run:{}", req.id, req.run))?;
    if let Some(ms) = req.freeze_ms {
        o = o.description(format!(
            "freezeframe run {}; freeze window {ms:.1} ms",
            req.run
        ));
    }
    Ok(o)
}

/// The config file and memory dump, stored under the reserved folder.
fn extras(req: &ContainerJob<'_>) -> Vec<Extra> {
    let mut extras = Vec::new();
    if let Some(c) = req.config {
        extras.push(Extra {
            name: "config",
            path: c.to_owned(),
        });
    }
    if let Some(d) = req.dump {
        extras.push(Extra {
            name: "dump",
            path: d.to_owned(),
        });
    }
    extras
}

/// restic's summary of what the backup saw and added.
fn summary(w: &Wrote, start: &Zoned) -> SnapshotSummary {
    let end = Zoned::now();
    let secs = end
        .since(start)
        .and_then(|d| d.total(Unit::Second))
        .unwrap_or_default();
    let mut s = SnapshotSummary::default();
    s.files_new = w.files_new;
    s.files_changed = w.files_changed;
    s.files_unmodified = w.files_unchanged;
    s.total_files_processed = w.files_new + w.files_changed + w.files_unchanged;
    s.total_bytes_processed = w.bytes_total;
    s.dirs_new = w.trees.dirs_new;
    s.dirs_changed = w.trees.dirs_changed;
    s.dirs_unmodified = w.trees.dirs_unmodified;
    s.total_dirs_processed = w.dirs + 1;
    s.data_blobs = w.data_blobs;
    s.tree_blobs = w.trees.blobs;
    s.data_added = w.data_bytes + w.trees.bytes;
    s.data_added_packed = w.data_stored + w.trees.stored;
    s.data_added_files = w.data_bytes;
    s.data_added_files_packed = w.data_stored;
    s.data_added_trees = w.trees.bytes;
    s.data_added_trees_packed = w.trees.stored;
    s.command = "freezeframe backup".into();
    s.backup_start = start.clone();
    s.backup_end = end.clone();
    s.backup_duration = secs;
    s.total_duration = secs;
    s
}
