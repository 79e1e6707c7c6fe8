//! `freezeframe backup`.

use anyhow::Result;
use freezeframe::config::Config;
use freezeframe::engine::{execute, plan, BackupRequest};
use freezeframe::target::Outcome;

use crate::cli::BackupArgs;
use crate::exit;
use crate::output::{overall, summary, Progress};

/// Plans, then (unless `--dry-run`) runs a backup.
pub fn run(config: &Config, args: &BackupArgs) -> Result<u8> {
    let tools = crate::system::toolbox(config);
    let req = BackupRequest {
        ids: args.ids.clone(),
        all: args.all,
        mode: args.mode.map(Into::into),
        strategy: args.strategy.map(Into::into),
        compress: args.compress.map(Into::into),
        level: args.level,
        jobs: args.jobs,
        dry_run: args.dry_run,
    };
    let plan = plan(config, &req, &tools)?;
    if args.dry_run {
        print!("{}", plan.describe());
        println!("dry run: nothing was frozen or written");
        return Ok(exit::OK);
    }
    let progress = Progress::new(args.json);
    let result = execute(&plan, &tools, &progress);
    progress.finish();
    let result = result?;
    if args.json {
        let mut v = serde_json::to_value(&result.manifest)?;
        v["dir"] = serde_json::Value::String(result.dir.display().to_string());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("run {} -> {}", result.run, result.dir.display());
        print!("{}", summary(&result.manifest));
    }
    Ok(match overall(&result.manifest) {
        Outcome::Ok => exit::OK,
        Outcome::Partial => exit::PARTIAL,
        Outcome::Failed => exit::FAILURE,
    })
}
