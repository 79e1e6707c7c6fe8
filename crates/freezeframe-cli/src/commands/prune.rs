//! `freezeframe prune`: a retention policy per container, then removal of
//! what it does not keep (tar: files; repository: snapshots, then a
//! two-phase prune of their data).

use anyhow::Result;
use freezeframe::{Config, Faults, HostLock, PruneRequest, Report, Retention, Target};

use crate::cli::PruneArgs;
use crate::exit::{self, UsageError};

/// The policy: the command line's rules over the config's `[retention]`.
fn policy(config: &Config, args: &PruneArgs) -> Result<Retention, UsageError> {
    let given = Retention {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
    };
    let keep = config.retention.unwrap_or_default().overridden_by(&given);
    if !keep.is_set() {
        return Err(UsageError(
            "prune needs a policy: one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, or a [retention] table in the config".into(),
        ));
    }
    if !keep.keeps_something() {
        return Err(UsageError(
            "this policy keeps nothing (every --keep-* is 0) and would forget every backup; give at least one rule a number above 0".into(),
        ));
    }
    Ok(keep)
}

/// Refuses a `--container` that is neither configured nor in the target.
fn check_containers(
    config: &Config,
    target: &dyn Target,
    ids: &[String],
) -> Result<(), UsageError> {
    for id in ids {
        let known = config.container(id).is_some()
            || target
                .find(&freezeframe::Which {
                    container: id,
                    run: None,
                })
                .is_ok();
        if !known {
            return Err(UsageError(format!(
                "unknown container `{id}`: it is not configured and has no backup in the target (see `freezeframe list`)"
            )));
        }
    }
    Ok(())
}

/// Applies the policy (or shows what it would do, `--dry-run`).
pub fn run(config: &Config, args: &PruneArgs) -> Result<u8> {
    let keep = policy(config, args)?;
    let target = crate::system::target(config)?;
    check_containers(config, target.as_ref(), &args.containers)?;
    let cancel = crate::signals::install()?;
    let faults = Faults::from_env().map_err(|e| UsageError(e.to_string()))?;
    let (_lock, takeover) =
        HostLock::acquire(&config.state_dir, "prune", args.lock_wait.0, &cancel)?;
    if let Some(w) = takeover {
        crate::output::warn(w);
    }
    // Stopping a prune anywhere is safe: tar rewrites each manifest before
    // it removes files; a repository prune is two-phase.
    crate::signals::exit_after(&cancel, std::time::Duration::ZERO, "prune");
    let report = apply(
        target.as_ref(),
        keep,
        &args.containers,
        args.dry_run,
        &faults,
    )?;
    crate::output::print_report(report.as_ref(), args.json)?;
    Ok(exit::OK)
}

/// Prunes `target` by `keep`.
pub fn apply(
    target: &dyn Target,
    keep: Retention,
    containers: &[String],
    dry_run: bool,
    faults: &Faults,
) -> Result<Box<dyn Report>> {
    Ok(target.prune(
        &PruneRequest {
            keep,
            containers: containers.to_vec(),
            dry_run,
        },
        faults,
    )?)
}
