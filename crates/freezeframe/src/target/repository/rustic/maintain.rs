//! Keeping the repository: `check` (structure, and with `read_data` the
//! data) and `prune` (keep policy, then rustic's two-phase prune under an
//! exclusive restic lock).

use std::collections::BTreeMap;

use rustic_core::repofile::SnapshotId;
use rustic_core::{CheckOptions, PruneOptions, ReadSubsetOption, RusticError};

use super::{info, Repo};
use crate::target::prune::{decisions, Item, PruneReport, Removed};
use crate::target::repository::{CheckReport, RepoError};
use crate::target::PruneRequest;

impl Repo {
    /// Checks the repository's structure; with `read_data`, also reads and
    /// verifies the data (all of it, or `subset`: `n/m`, `x%` or a size).
    pub fn check(&self, read_data: bool, subset: Option<&str>) -> Result<CheckReport, RepoError> {
        let mut opts = CheckOptions::default().read_data(read_data);
        if let Some(s) = subset {
            let parsed: ReadSubsetOption = s.parse().map_err(|e: Box<RusticError>| {
                RepoError::Invalid(format!(
                    "--read-data-subset `{s}`: {e}; use n/m (e.g. 1/5), a percentage (10%) or a size (1G)"
                ))
            })?;
            opts = opts.read_data(true).read_data_subset(parsed);
        }
        self.with_open(|repo| {
            let results = repo.check(opts).map_err(|e| self.err("checking", e))?;
            let mut report = CheckReport::default();
            for (level, e) in results.0 {
                // rustic_core does not export the level's type; its Debug
                // form is `Warn` or `Error`.
                if format!("{level:?}") == "Warn" {
                    report.warnings.push(e.to_string());
                } else {
                    report.errors.push(e.to_string());
                }
            }
            Ok(report)
        })
    }

    /// Applies `req.keep` to each container's snapshots (per host; of
    /// `req.containers`, or of all), forgets the others and prunes
    /// unreferenced data in two phases: packs are only marked now and
    /// removed by a later prune once the grace time has passed, so a backup
    /// running on another host at the same time never loses data it just
    /// wrote. `req.dry_run`: decide only.
    pub fn prune(&self, req: &PruneRequest) -> Result<PruneReport, RepoError> {
        // restic's rule: prune runs alone. Refused, naming the holder,
        // while a backup (ours or restic's) holds a lock; held to the end.
        let _lock = if req.dry_run {
            None
        } else {
            Some(self.lock(true)?)
        };
        let all = self.all_snapshots()?;
        let mut items = Vec::new();
        let mut by_id = BTreeMap::new();
        for s in all {
            if req.containers.is_empty() || req.containers.contains(&s.label) {
                let i = info(&s);
                let time = chrono::DateTime::from_timestamp_nanos(
                    i64::try_from(s.time.timestamp().as_nanosecond()).unwrap_or(i64::MAX),
                );
                items.push(Item {
                    container: s.label.clone(),
                    host: s.hostname.clone(),
                    id: i.id.clone(),
                    run: i.run.clone(),
                    time,
                    complete: !i.partial,
                });
                by_id.insert(i.id, s.id);
            }
        }
        let decided = decisions(&items, &req.keep);
        let forget: Vec<SnapshotId> = decided
            .iter()
            .filter(|d| !d.keep)
            .filter_map(|d| by_id.get(&d.id).copied())
            .collect();
        self.with_open(|repo| {
            if !req.dry_run && !forget.is_empty() {
                repo.delete_snapshots(&forget)
                    .map_err(|e| self.err("forgetting snapshots", e))?;
            }
            let popts = PruneOptions::default().ignore_snaps(if req.dry_run {
                forget.clone()
            } else {
                Vec::new()
            });
            let plan = repo
                .prune_plan(&popts)
                .map_err(|e| self.err("planning the prune", e))?;
            let st = &plan.stats;
            let removed = Removed::Repository {
                packs_marked: st.packs.unused,
                packs_removed: st.packs_to_delete.remove,
                packs_repacked: st.packs.repack,
                bytes_unused: st.size_sum().unused,
            };
            if !req.dry_run {
                repo.prune(&popts, plan)
                    .map_err(|e| self.err("pruning", e))?;
            }
            Ok(PruneReport {
                decisions: decided,
                dry_run: req.dry_run,
                removed,
            })
        })
    }
}
