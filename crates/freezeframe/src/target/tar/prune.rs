//! Retention for a tar target: the policy decides per container (and host)
//! which runs keep its backup; a dropped backup's files leave its run
//! folder after the run's manifest was rewritten without it (so every
//! manifest always describes files that exist), and a run folder left with
//! no backup at all is removed. Incomplete runs are never touched.
//!
//! Crash safety: the manifest is replaced atomically first, files go
//! second; a run folder is renamed to `.ff-tmp-prune-<run>` before it is
//! removed. What a killed prune leaves (files no manifest names, renamed
//! folders) the next prune removes.

use std::path::Path;

use crate::sys::Faults;
use crate::target::layout::{RunId, MANIFEST_NAME};
use crate::target::manifest::{Manifest, Outcome};
use crate::target::prune::{decisions, Item, PruneReport, Removed};
use crate::target::store::{RunListing, Store};
use crate::target::{PruneRequest, TargetError};

/// Prefix of a run folder being removed by prune.
const REMOVING_PREFIX: &str = ".ff-tmp-prune-";

fn io(what: String) -> impl FnOnce(std::io::Error) -> TargetError {
    move |source| TargetError::Io { what, source }
}

/// Applies `req` to `store`.
pub(super) fn prune(
    store: &Store,
    req: &PruneRequest,
    faults: &Faults,
) -> Result<PruneReport, TargetError> {
    if !req.dry_run {
        sweep_leftovers(store)?;
    }
    let runs: Vec<RunListing> = store.list()?;
    let mut items = Vec::new();
    for r in &runs {
        let Ok(m) = &r.manifest else { continue };
        for c in &m.containers {
            let wanted = req.containers.is_empty() || req.containers.contains(&c.id);
            if wanted && c.result != Outcome::Failed && !c.files.is_empty() {
                items.push(Item {
                    container: c.id.clone(),
                    host: m.host.clone(),
                    id: r.id.to_string(),
                    run: Some(r.id.to_string()),
                    time: m.started_at,
                    complete: c.result == Outcome::Ok,
                });
            }
        }
    }
    let decided = decisions(&items, &req.keep);
    let (mut files_removed, mut bytes_freed, mut runs_removed) = (0u64, 0u64, 0u64);
    for r in &runs {
        let Ok(m) = &r.manifest else { continue };
        let drop: Vec<&str> = decided
            .iter()
            .filter(|d| !d.keep && d.id == r.id.as_str())
            .map(|d| d.container.as_str())
            .collect();
        if drop.is_empty() {
            continue;
        }
        let (gone, kept): (Vec<_>, Vec<_>) = m
            .containers
            .iter()
            .cloned()
            .partition(|c| drop.contains(&c.id.as_str()));
        let files: Vec<&str> = gone
            .iter()
            .flat_map(|c| c.files.iter().map(|f| f.name.as_str()))
            .collect();
        files_removed += files.len() as u64;
        bytes_freed += gone
            .iter()
            .flat_map(|c| &c.files)
            .map(|f| f.size)
            .sum::<u64>();
        let empty = kept.iter().all(|c| c.files.is_empty());
        runs_removed += u64::from(empty);
        if req.dry_run {
            continue;
        }
        let rewritten = Manifest {
            containers: kept,
            ..m.clone()
        };
        let json = serde_json::to_vec_pretty(&rewritten).map_err(|e| TargetError::Io {
            what: format!("writing the manifest of {}", r.id),
            source: e.into(),
        })?;
        let mpath = r.path.join(MANIFEST_NAME);
        crate::sys::atomic::replace(&mpath, &json)
            .map_err(io(format!("rewriting {}", mpath.display())))?;
        faults.hit("mid-prune", &crate::sys::Cancel::new());
        for f in files {
            remove_file(&r.path.join(f))?;
        }
        if empty {
            remove_run(store.root(), &r.id)?;
        }
    }
    Ok(PruneReport {
        decisions: decided,
        dry_run: req.dry_run,
        removed: Removed::Tar {
            files_removed,
            bytes_freed,
            runs_removed,
        },
    })
}

fn remove_file(p: &Path) -> Result<(), TargetError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io(format!("removing {}", p.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Removes a run folder with nothing left in it: renamed first, so that a
/// prune killed halfway leaves no half-removed folder under a run's name.
fn remove_run(root: &Path, run: &RunId) -> Result<(), TargetError> {
    let from = root.join(run.as_str());
    let to = root.join(format!("{REMOVING_PREFIX}{run}"));
    std::fs::rename(&from, &to).map_err(io(format!("removing {}", from.display())))?;
    crate::sys::fs::fsync_dir(root).map_err(io(format!("syncing {}", root.display())))?;
    std::fs::remove_dir_all(&to).map_err(io(format!("removing {}", to.display())))
}

/// What a killed prune left: folders it was removing, runs whose every
/// backup it had dropped, and, in complete runs, files of a container the
/// manifest no longer lists.
fn sweep_leftovers(store: &Store) -> Result<(), TargetError> {
    let root = store.root();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(REMOVING_PREFIX)) else {
                continue;
            };
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && RunId::parse(rest).is_some() {
                std::fs::remove_dir_all(e.path())
                    .map_err(io(format!("removing {}", e.path().display())))?;
            }
        }
    }
    for r in store.list()? {
        let Ok(m) = &r.manifest else { continue };
        if m.containers.is_empty() {
            // Every backup of it was pruned; only the folder was left.
            remove_run(root, &r.id)?;
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&r.path) else {
            continue;
        };
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(id) = orphan_owner(&name, m) {
                tracing::info!(run = %r.id, file = %name, container = %id, "removing what an interrupted prune left");
                remove_file(&e.path())?;
            }
        }
    }
    Ok(())
}

/// If `name` is a file a run writes for a container the manifest does not
/// list (any more), that container's id.
fn orphan_owner(name: &str, m: &Manifest) -> Option<String> {
    const SUFFIXES: [&str; 6] = [".tar.zst", ".tar.bz2", ".tar.gz", ".tar", ".conf", ".dump"];
    let stem = SUFFIXES.iter().find_map(|s| name.strip_suffix(s))?;
    let id = crate::config::ContainerId::new(stem).ok()?;
    m.container(id.as_str()).is_none().then(|| id.to_string())
}
