//! Backing up one container: its files are spread over parts archived side
//! by side (see `repo::split`), each part written as a temporary snapshot;
//! the parts' trees are merged into the container's one snapshot, and the
//! temporary snapshots are removed.
//!
//! Part snapshots carry the tag `freezeframe-part` instead of `freezeframe`,
//! so nothing lists, restores or prunes them. If the process dies between
//! writing them and removing them, the next backup of the container on this
//! host removes them.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use rustic_core::jiff::{Unit, Zoned};
use rustic_core::repofile::{Node, SnapshotFile, SnapshotId, SnapshotSummary};
use rustic_core::{BackupOptions, IndexedIdsStatus, Repository, RusticError, SnapshotOptions};

use super::source::{CountingSource, Extra, Findings, Part};
use super::{full_hex, Repo, Writer};
use crate::target::repository::split::Split;
use crate::target::repository::{RepoBackupRecord, RepoError, PARTIAL_TAG, RESERVED_DIR, TAG};
use crate::target::ContainerJob;

/// Lines of a partial snapshot's description naming what could not be read.
pub(super) const MISSING_PREFIX: &str = "missing: ";
/// Most such lines (the run's manifest lists them all).
const MAX_MISSING_LINES: usize = 100;

/// The tag of the temporary per-part snapshots.
pub(super) const PART_TAG: &str = "freezeframe-part";

type Indexed = Repository<IndexedIdsStatus>;

impl Repo {
    /// Backs up one container as one snapshot. Files that cannot be read
    /// are listed in the record (and the snapshot is tagged `partial`);
    /// a cancelled backup leaves no snapshot.
    pub fn backup(&self, req: &ContainerJob<'_>) -> Result<RepoBackupRecord, RepoError> {
        let cancel = req.cancel;
        let t0 = Instant::now();
        let findings = Arc::new(Findings::default());
        let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let split = Arc::new(Split::plan(req.source, workers, self.max_parts));

        let mut w = self.indexed()?;
        let repo = self.held(&w)?;
        let (parent, leftovers) = self.parent_and_leftovers(repo, req)?;
        self.remove(repo, &leftovers)?;
        let mut opts = BackupOptions::default().as_path(PathBuf::from("/"));
        match &parent {
            Some(p) => opts.parent_opts.parents = vec![full_hex(&p.id)],
            None => opts.parent_opts.force = true,
        }
        let part_snap = snapshot_options(req, PART_TAG)
            .and_then(|o| o.to_snapshot())
            .map_err(|e| self.err("preparing", e))?;
        let extras = extras(req);
        let results: Vec<Result<SnapshotFile, Box<RusticError>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..split.parts())
                .map(|index| {
                    let part = Part {
                        split: split.clone(),
                        index,
                    };
                    let extras = if index == 0 {
                        extras.clone()
                    } else {
                        Vec::new()
                    };
                    let (findings, cancel) = (findings.clone(), cancel.clone());
                    let (opts, snap) = (&opts, part_snap.clone());
                    s.spawn(move || {
                        let src = CountingSource::new(req.source, extras, findings, cancel, part)?;
                        repo.archive(opts, &src, snap, &[req.source.to_owned()])
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(RusticError::new(
                            rustic_core::ErrorKind::Internal,
                            "an archiver thread panicked",
                        ))
                    })
                })
                .collect()
        });

        if split.parts() > 1 {
            // The parts' trees must be in the index to be merged.
            self.reindex(&mut w)?;
        }
        let repo = self.held(&w)?;
        let mut parts = Vec::new();
        let mut failed = None;
        for r in results {
            match r {
                Ok(s) => parts.push(s),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        let give_up = |err: RepoError| -> Result<RepoBackupRecord, RepoError> {
            if let Err(e) = self.remove(repo, &parts) {
                // The next backup of this container removes them.
                tracing::warn!(container = %req.id, "{e}");
            }
            Err(err)
        };
        if findings.cancelled.load(Ordering::SeqCst) || cancel.check().is_err() {
            return give_up(RepoError::Interrupted);
        }
        if let Some(e) = failed {
            return give_up(self.err(format!("backing up {}", req.id), e));
        }
        if findings.reserved_clash.load(Ordering::SeqCst) {
            return give_up(RepoError::Invalid(format!(
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

        let merged = self.merge(repo, req, &parts, parent.as_ref(), &unreadable);
        let snap = match merged {
            Ok(s) => s,
            Err(e) => return give_up(e),
        };
        self.remove(repo, &parts)?;
        // Re-read the index so the next container deduplicates against this one.
        self.reindex(&mut w)?;

        let sum = snap.summary.clone().unwrap_or_default();
        Ok(RepoBackupRecord {
            snapshot: full_hex(&snap.id),
            parent: snap.parent.map(|p| full_hex(&p)),
            files_new: sum.files_new,
            files_changed: sum.files_changed,
            files_unchanged: sum.files_unmodified,
            bytes_read: findings.bytes_read.load(Ordering::Relaxed),
            bytes_added: sum.data_added,
            bytes_added_packed: sum.data_added_packed,
            duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
            parts: u32::try_from(parts.len()).unwrap_or(u32::MAX),
            unreadable,
        })
    }

    /// The writer half, indexed.
    fn indexed(&self) -> Result<MutexGuard<'_, Writer>, RepoError> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| self.err("locking", "poisoned"))?;
        if w.is_none() {
            let open = self
                .open
                .lock()
                .map_err(|_| self.err("locking", "poisoned"))?
                .take()
                .ok_or_else(|| self.err("opening", "repository lost"))?;
            *w = Some(
                open.to_indexed_ids()
                    .map_err(|e| self.err("reading the index", e))?,
            );
        }
        Ok(w)
    }

    fn held<'w>(&self, w: &'w MutexGuard<'_, Writer>) -> Result<&'w Indexed, RepoError> {
        w.as_ref()
            .ok_or_else(|| self.err("opening", "repository lost"))
    }

    fn reindex(&self, w: &mut MutexGuard<'_, Writer>) -> Result<(), RepoError> {
        if let Some(r) = w.take() {
            **w = Some(
                r.drop_index()
                    .to_indexed_ids()
                    .map_err(|e| self.err("re-reading the index", e))?,
            );
        }
        Ok(())
    }

    /// The newest snapshot (complete or partial) of this container from
    /// this host, whose unchanged files are not read again; and the part
    /// snapshots of this container a backup on this host left when it died
    /// before removing them (the host lock rules out one still running).
    fn parent_and_leftovers(
        &self,
        repo: &Indexed,
        req: &ContainerJob<'_>,
    ) -> Result<(Option<SnapshotFile>, Vec<SnapshotFile>), RepoError> {
        let ct = format!("ct:{}", req.id);
        let mut parent: Option<SnapshotFile> = None;
        let mut leftovers = Vec::new();
        for s in repo
            .get_all_snapshots()
            .map_err(|e| self.err("listing snapshots", e))?
        {
            if s.hostname != req.host {
                continue;
            }
            if s.tags.contains(PART_TAG) && s.tags.contains(&ct) {
                leftovers.push(s);
            } else if s.tags.contains(TAG)
                && s.label == req.id.as_str()
                && parent.as_ref().is_none_or(|p| s.time > p.time)
            {
                parent = Some(s);
            }
        }
        Ok((parent, leftovers))
    }

    fn remove(&self, repo: &Indexed, snaps: &[SnapshotFile]) -> Result<(), RepoError> {
        if snaps.is_empty() {
            return Ok(());
        }
        let ids: Vec<SnapshotId> = snaps.iter().map(|s| s.id).collect();
        repo.delete_snapshots(&ids)
            .map_err(|e| self.err("removing temporary part snapshots", e))
    }

    /// Writes the container's snapshot: the parts' trees merged, their
    /// counts summed.
    fn merge(
        &self,
        repo: &Indexed,
        req: &ContainerJob<'_>,
        parts: &[SnapshotFile],
        parent: Option<&SnapshotFile>,
        unreadable: &[String],
    ) -> Result<SnapshotFile, RepoError> {
        let first = parts
            .first()
            .ok_or_else(|| self.err("merging", "no part was backed up"))?;
        let mut merging = SnapshotSummary::default();
        let tree = if parts.len() == 1 {
            first.tree
        } else {
            let trees: Vec<_> = parts.iter().map(|p| p.tree).collect();
            // Only folders occur in several parts, with equal metadata.
            let newest = |a: &Node, b: &Node| a.meta.mtime.cmp(&b.meta.mtime);
            repo.merge_trees(&trees, &newest, &mut merging)
                .map_err(|e| self.err("merging the parts", e))?
        };
        let mut opts = snapshot_options(req, TAG).map_err(|e| self.err("tagging", e))?;
        if !unreadable.is_empty() {
            opts = opts
                .add_tags(PARTIAL_TAG)
                .map_err(|e| self.err("tagging", e))?;
        }
        let mut snap = opts.to_snapshot().map_err(|e| self.err("preparing", e))?;
        if !unreadable.is_empty() {
            // What is missing travels with the snapshot: a restore of it
            // says so without the run's manifest.
            let mut d = snap.description.take().unwrap_or_default();
            for u in unreadable.iter().take(MAX_MISSING_LINES) {
                d.push('\n');
                d.push_str(MISSING_PREFIX);
                d.push_str(&u.replace('\n', "\\n"));
            }
            if unreadable.len() > MAX_MISSING_LINES {
                d.push_str(&format!(
                    "\n{MISSING_PREFIX}… {} more (see the run's manifest)",
                    unreadable.len() - MAX_MISSING_LINES
                ));
            }
            snap.description = Some(d);
        }
        snap.time = parts
            .iter()
            .map(|p| p.time.clone())
            .min()
            .unwrap_or_else(Zoned::now);
        snap.tree = tree;
        snap.paths = first.paths.clone();
        snap.parent = parent.map(|p| p.id);
        snap.parents = parent.map(|p| vec![p.id]).unwrap_or_default();
        snap.summary = Some(summed(parts, &merging, &snap.time));

        let before: HashSet<SnapshotId> = repo
            .list::<SnapshotId>()
            .map_err(|e| self.err("listing snapshots", e))?
            .collect();
        repo.save_snapshots(vec![snap])
            .map_err(|e| self.err("saving the snapshot", e))?;
        // rustic_core does not return the new file's id: find it.
        let new: Vec<String> = repo
            .list::<SnapshotId>()
            .map_err(|e| self.err("listing snapshots", e))?
            .filter(|id| !before.contains(id))
            .map(|id| full_hex(&id))
            .collect();
        let run = format!("run:{}", req.run);
        repo.get_snapshots(&new)
            .map_err(|e| self.err("reading the saved snapshot", e))?
            .into_iter()
            .find(|s| {
                s.tags.contains(TAG)
                    && s.tags.contains(&run)
                    && s.label == req.id.as_str()
                    && s.hostname == req.host
            })
            .ok_or_else(|| self.err("saving the snapshot", "saved snapshot not found"))
    }
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

/// The parts' counts added up. Every part walks every folder, so folder
/// counts are the first part's; the merge's new trees are added.
fn summed(parts: &[SnapshotFile], merging: &SnapshotSummary, time: &Zoned) -> SnapshotSummary {
    let mut s = parts
        .first()
        .and_then(|p| p.summary.clone())
        .unwrap_or_default();
    for p in parts.iter().skip(1) {
        let q = p.summary.clone().unwrap_or_default();
        s.files_new += q.files_new;
        s.files_changed += q.files_changed;
        s.files_unmodified += q.files_unmodified;
        s.total_files_processed += q.total_files_processed;
        s.total_bytes_processed += q.total_bytes_processed;
        add_written(&mut s, &q);
        if q.backup_start < s.backup_start {
            s.backup_start = q.backup_start;
        }
    }
    add_written(&mut s, merging);
    let end = Zoned::now();
    let secs = |from: &Zoned| {
        end.since(from)
            .and_then(|d| d.total(Unit::Second))
            .unwrap_or_default()
    };
    s.backup_duration = secs(&s.backup_start);
    s.total_duration = secs(time);
    s.backup_end = end;
    s
}

/// Adds what `q` wrote to the repository (blobs, bytes) to `s`.
fn add_written(s: &mut SnapshotSummary, q: &SnapshotSummary) {
    s.data_blobs += q.data_blobs;
    s.tree_blobs += q.tree_blobs;
    s.data_added += q.data_added;
    s.data_added_packed += q.data_added_packed;
    s.data_added_files += q.data_added_files;
    s.data_added_files_packed += q.data_added_files_packed;
    s.data_added_trees += q.data_added_trees;
    s.data_added_trees_packed += q.data_added_trees_packed;
}
