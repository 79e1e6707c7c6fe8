//! `freezeframe drill`: restore the newest (or a named) backup of each
//! container into a scratch folder, check it, remove it, and record the
//! result where `status` and the metrics see it. Exit 0 if every drill
//! passed, 1 if one failed.

use anyhow::Result;
use freezeframe::{
    drill, record_drills, remove_stale_scratch, Config, DrillRequest, DrillResult, Faults,
    HostLock, SystemRunner,
};

use crate::cli::DrillArgs;
use crate::exit::{self, UsageError};

/// Drills the containers asked for (all configured ones by default).
pub fn run(config: &Config, args: &DrillArgs) -> Result<u8> {
    let target = crate::system::target(config)?;
    let cancel = crate::signals::install()?;
    let faults = Faults::from_env().map_err(|e| UsageError(e.to_string()))?;
    let ids: Vec<String> = if args.ids.is_empty() {
        freezeframe::configured(config)
    } else {
        for id in &args.ids {
            if config.container(id).is_none() {
                return Err(UsageError(format!(
                    "container {id} is not configured (configured: {})",
                    freezeframe::configured(config).join(", ")
                ))
                .into());
            }
        }
        args.ids.clone()
    };
    if args.run.is_some() && ids.len() != 1 {
        return Err(UsageError(
            "--run names one backup: give exactly one container with it".into(),
        )
        .into());
    }
    // Under the host lock: no prune removes the backup being restored,
    // and no backup rewrites the status record meanwhile.
    let (_lock, takeover) =
        HostLock::acquire(&config.state_dir, "drill", args.lock_wait.0, &cancel)?;
    if let Some(w) = takeover {
        crate::output::warn(w);
    }
    let scratch = &config.drill.scratch_dir;
    for note in remove_stale_scratch(scratch) {
        crate::output::note(format_args!("freezeframe: {note}"));
    }
    let mut results: Vec<DrillResult> = Vec::new();
    for id in &ids {
        let check = config.container(id).and_then(|c| c.drill_check.as_deref());
        let r = drill(
            target.as_ref(),
            &DrillRequest {
                id,
                run: args.run.as_deref(),
                scratch,
                check,
                check_timeout: config.drill.check_timeout.0,
            },
            &SystemRunner,
            &faults,
            &cancel,
        );
        if !args.json {
            match &r.error {
                None => println!(
                    "{id}: drill passed: {} restored, {} entries{} ({:.1} s)",
                    r.backup.as_deref().unwrap_or("?"),
                    r.entries,
                    if check.is_some() {
                        ", check passed"
                    } else {
                        ""
                    },
                    r.seconds
                ),
                Some(e) => println!("{id}: drill FAILED: {e}"),
            }
        }
        results.push(r);
        if let Some(sig) = cancel.signal() {
            return Ok(exit::signal(sig));
        }
    }
    for w in record_drills(config, &results) {
        crate::output::warn(w);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if results.iter().all(|r| r.ok) {
        exit::OK
    } else {
        exit::FAILURE
    })
}
