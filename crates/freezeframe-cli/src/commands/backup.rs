//! `freezeframe backup`: lock → reconcile → plan → guardian → execute.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use freezeframe::{
    drop_unconfigured_bases, execute, host_name, plan, record_run, recover, BackupRequest, Config,
    ExecError, Faults, HostLock, Journal, Notifier, Outcome, RunSummary, Scope, SystemHttp,
    SystemRunner,
};

use crate::cli::BackupArgs;
use crate::exit::{self, UsageError};
use crate::guardian::Guardian;
use crate::output::{overall, summary, Progress};
use crate::system::HostPaths;

/// Plans, then (unless `--dry-run`) runs a backup; notifies as `[notify]`
/// says, whatever the run's end.
pub fn run(config: &Config, args: &BackupArgs) -> Result<u8> {
    if args.dry_run {
        return run_backup(config, args, None);
    }
    let notifier = Notifier::new(
        config.notify.clone(),
        Arc::new(SystemHttp),
        Arc::new(SystemRunner),
    );
    let started = chrono::Utc::now();
    let pings = notifier.start();
    let mut summary = None;
    let result = run_backup(config, args, Some(&mut summary));
    // A run stopped by a signal ends within a second: its notifications
    // get half a second each, no retries, and the start pings are not
    // waited for.
    let stopped = stopped_by_signal(&result);
    let summary = match (&result, summary) {
        (_, Some(s)) => s,
        (Ok(code), None) => RunSummary::failed(
            &host_name(),
            started,
            format!("the run was stopped (exit {code})"),
        ),
        (Err(e), None) => RunSummary::failed(&host_name(), started, format!("{e:#}")),
    };
    let mut warnings = Vec::new();
    if stopped {
        pings.abandon();
        warnings.extend(
            notifier
                .hurried(Duration::from_millis(500))
                .finish(&summary),
        );
    } else {
        warnings.extend(pings.wait());
        warnings.extend(notifier.finish(&summary));
    }
    for w in warnings {
        crate::output::warn(w);
    }
    result
}

/// Whether the run ended by a signal (its exit code says so).
fn stopped_by_signal(result: &Result<u8>) -> bool {
    matches!(result, Ok(code) if *code > 128)
}

/// The run itself; `summary` gets the run's summary once it has a manifest.
fn run_backup(
    config: &Config,
    args: &BackupArgs,
    ended: Option<&mut Option<RunSummary>>,
) -> Result<u8> {
    let mut tools = crate::system::toolbox(config);
    tools.cancel = crate::signals::install()?;
    tools.faults = Faults::from_env().map_err(|e| UsageError(e.to_string()))?;
    if args.prune && config.retention.is_none() {
        return Err(UsageError(
            "--prune applies the config's [retention] policy, and this config has none".into(),
        )
        .into());
    }
    // Opened (a repository's password checked) before anything is frozen.
    let target = crate::system::target(config)?;
    let req = BackupRequest {
        ids: args.ids.clone(),
        all: args.all,
        mode: args.mode.map(Into::into),
        strategy: args.strategy.map(Into::into),
        compress: args.compress.map(Into::into),
        level: args.level,
        jobs: args.jobs,
        dry_run: args.dry_run,
        exclude: args.exclude.clone(),
    };
    if args.dry_run {
        let plan = plan(config, &req, &tools)?;
        print!("{}", plan.describe());
        println!("dry run: nothing was frozen or written");
        return Ok(exit::OK);
    }
    let (_lock, takeover) =
        HostLock::acquire(&config.state_dir, "backup", args.lock_wait.0, &tools.cancel)?;
    if let Some(w) = takeover {
        crate::output::warn(w);
    }
    tools.faults.hit("after-lock", &tools.cancel);
    crate::commands::recover::report(
        &recover(&config.state_dir, &tools, &config.volumes, Scope::Dead)?,
        "before this run",
    );
    crate::commands::recover::report(
        &drop_unconfigured_bases(&config.state_dir, &tools, config),
        "before this run",
    );
    let plan = plan(config, &req, &tools)?;
    let guardian = Arc::new(
        Guardian::spawn(&config.state_dir, &HostPaths::of(config)).map_err(|e| {
            anyhow::anyhow!("cannot start the guardian process: {e}; nothing was frozen")
        })?,
    );
    tools.watchdog = guardian.clone();
    let containers = plan.volumes.iter().map(|v| v.containers.len() as u64).sum();
    let progress = Progress::new(args.json || args.quiet, containers);
    let result = execute(&plan, &tools, target.as_ref(), &progress);
    progress.finish();
    guardian.finish();
    // Nothing left pending: start the next run with an empty journal.
    let _ = Journal::clear_if_settled(&config.state_dir);
    let result = match result {
        Err(ExecError::Interrupted { signal }) => {
            crate::output::note(format_args!(
                "freezeframe: {}",
                ExecError::Interrupted { signal }
            ));
            return Ok(exit::signal(signal));
        }
        r => r?,
    };
    for w in record_run(config, &result.manifest) {
        crate::output::warn(w);
    }
    if let Some(s) = ended {
        *s = Some(RunSummary::of(&result.manifest));
    }
    if args.json {
        let mut v = serde_json::to_value(&result.manifest)?;
        v["dir"] = serde_json::Value::String(result.dir.display().to_string());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("run {} -> {}", result.run, result.dir.display());
        print!("{}", summary(&result.manifest));
    }
    let outcome = overall(&result.manifest);
    if args.prune && outcome != Outcome::Failed {
        let keep = config.retention.unwrap_or_default();
        match crate::commands::prune::apply(target.as_ref(), keep, &[], false, &tools.faults) {
            Ok(report) if args.json => crate::output::note(format_args!("{}", report.to_json())),
            Ok(report) => print!("{}", report.to_text()),
            Err(e) => crate::output::note(format_args!(
                "freezeframe: warning: the backup is done, but pruning by [retention] failed: {e:#}"
            )),
        }
    }
    Ok(match outcome {
        Outcome::Ok => exit::OK,
        Outcome::Partial => exit::PARTIAL,
        Outcome::Failed => exit::FAILURE,
    })
}
