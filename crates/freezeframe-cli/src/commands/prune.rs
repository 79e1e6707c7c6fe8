//! `freezeframe prune`: retention per container, then a two-phase prune.

use anyhow::Result;
use freezeframe::config::Config;
use freezeframe::repo::Retention;
use freezeframe::state::HostLock;

use crate::cli::PruneArgs;
use crate::exit::{self, UsageError};

/// Forgets what the policy does not keep and prunes (or shows it, `--dry-run`).
pub fn run(config: &Config, args: &PruneArgs) -> Result<u8> {
    let keep = Retention {
        last: args.keep_last,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
    };
    if !keep.is_set() {
        return Err(UsageError(
            "prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly".into(),
        )
        .into());
    }
    if !keep.keeps_something() {
        return Err(UsageError(
            "this policy keeps nothing (every --keep-* is 0) and would forget every snapshot; give at least one rule a number above 0".into(),
        )
        .into());
    }
    let repo = crate::commands::repository::open(config, "prune")?;
    if !args.containers.is_empty() {
        let snaps = repo.snapshots(None)?;
        for id in &args.containers {
            if config.container(id).is_none() && !snaps.iter().any(|s| &s.container == id) {
                return Err(UsageError(format!(
                    "unknown container `{id}`: it is not configured and has no snapshots in the repository (see `freezeframe list`)"
                ))
                .into());
            }
        }
    }
    let cancel = crate::signals::install()?;
    // rustic's prune does not look at `cancel`; stopping it anywhere is
    // safe (two-phase: nothing referenced is deleted before it is marked).
    crate::signals::exit_after(&cancel, std::time::Duration::ZERO, "prune");
    let (_lock, takeover) =
        HostLock::acquire(&config.state_dir, "prune", args.lock_wait.0, &cancel)?;
    if let Some(w) = takeover {
        crate::output::note(format_args!("freezeframe: warning: {w}"));
    }
    let report = repo.prune(&keep, &args.containers, args.dry_run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(exit::OK);
    }
    let verb = if args.dry_run { "would " } else { "" };
    for d in &report.decisions {
        let s = &d.snapshot;
        println!(
            "{:<6} {:<10} {:<12} {:<20} {}",
            if d.keep { "keep" } else { "forget" },
            &s.id[..8.min(s.id.len())],
            s.container,
            s.time,
            if d.keep {
                d.reasons.join(", ")
            } else {
                String::new()
            }
        );
    }
    let forgotten = report.decisions.iter().filter(|d| !d.keep).count();
    println!(
        "{verb}forget {forgotten} of {} snapshot(s); {verb}mark {} pack(s) for deletion, {verb}remove {} pack(s) marked earlier, {verb}repack {}",
        report.decisions.len(),
        report.packs_marked,
        report.packs_removed,
        report.packs_repacked
    );
    if args.dry_run {
        println!("dry run: nothing was changed");
    }
    Ok(exit::OK)
}
