//! What `prune` decided and did, the same shape for both kinds of target:
//! one decision per backup (kept, with the rules that keep it, or
//! forgotten), then what was removed.

use serde::Serialize;

use super::report::{size, Report};
use super::retention::{decide, Candidate, Retention};

/// One backup's fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneDecision {
    /// Container id.
    pub container: String,
    /// Host that took it.
    pub host: String,
    /// Run id (tar) or snapshot id (repository).
    pub id: String,
    /// The run that took it.
    pub run: Option<String>,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Kept?
    pub keep: bool,
    /// The rules that keep it.
    pub reasons: Vec<String>,
}

/// What was removed (or would be, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Removed {
    /// From a tar target.
    Tar {
        /// Files removed from run folders.
        files_removed: u64,
        /// Bytes they held.
        bytes_freed: u64,
        /// Run folders removed because nothing was left in them.
        runs_removed: u64,
    },
    /// From a repository (prune is two-phase).
    Repository {
        /// Pack files marked for deletion (removed by a later prune).
        packs_marked: u64,
        /// Pack files removed now (marked by an earlier prune).
        packs_removed: u64,
        /// Pack files repacked.
        packs_repacked: u64,
        /// Bytes no longer referenced by any snapshot.
        bytes_unused: u64,
    },
}

/// What `prune` decided and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Every backup considered, per container, newest first.
    pub decisions: Vec<PruneDecision>,
    /// Nothing was changed.
    pub dry_run: bool,
    /// What was (or would be) removed.
    #[serde(flatten)]
    pub removed: Removed,
}

impl Report for PruneReport {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        for d in &self.decisions {
            s.push_str(&format!(
                "{:<6} {:<40} {:<12} {:<20} {}\n",
                if d.keep { "keep" } else { "forget" },
                d.id,
                d.container,
                d.time,
                d.reasons.join(", ")
            ));
        }
        let verb = if self.dry_run { "would " } else { "" };
        let forgotten = self.decisions.iter().filter(|d| !d.keep).count();
        match &self.removed {
            Removed::Tar {
                files_removed,
                bytes_freed,
                runs_removed,
            } => s.push_str(&format!(
                "{verb}forget {forgotten} of {} backup(s); {verb}remove {files_removed} file(s) ({}) and {runs_removed} emptied run folder(s)\n",
                self.decisions.len(),
                size(*bytes_freed)
            )),
            Removed::Repository {
                packs_marked,
                packs_removed,
                packs_repacked,
                ..
            } => s.push_str(&format!(
                "{verb}forget {forgotten} of {} snapshot(s); {verb}mark {packs_marked} pack(s) for deletion, {verb}remove {packs_removed} pack(s) marked earlier, {verb}repack {packs_repacked}\n",
                self.decisions.len()
            )),
        }
        if self.dry_run {
            s.push_str("dry run: nothing was changed\n");
        }
        s
    }
}

/// One backup as the policy sees it, with what the report says of it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub container: String,
    pub host: String,
    pub id: String,
    pub run: Option<String>,
    pub time: chrono::DateTime<chrono::Utc>,
    pub complete: bool,
}

/// Applies `keep` per container and host (in the machine's local time);
/// decisions grouped by container and host, newest first.
pub(crate) fn decisions(items: &[Item], keep: &Retention) -> Vec<PruneDecision> {
    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<&Item>> = Default::default();
    for i in items {
        groups.entry((&i.container, &i.host)).or_default().push(i);
    }
    let local = |t: &chrono::DateTime<chrono::Utc>| t.with_timezone(&chrono::Local).naive_local();
    let mut out = Vec::new();
    for ((container, host), group) in groups {
        let cands: Vec<Candidate> = group
            .iter()
            .map(|i| Candidate {
                id: i.id.clone(),
                time: i.time,
                complete: i.complete,
            })
            .collect();
        for d in decide(&cands, keep, local) {
            let item = group
                .iter()
                .find(|i| i.id == d.id)
                .expect("decided items exist");
            out.push(PruneDecision {
                container: container.to_owned(),
                host: host.to_owned(),
                id: d.id,
                run: item.run.clone(),
                time: item.time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                keep: d.keep,
                reasons: d.reasons,
            });
        }
    }
    out
}
