//! The repository side of `list`, `verify` and `restore`, and opening the
//! repository of a `repository` target.

use anyhow::Result;
use freezeframe::config::Config;
use freezeframe::repo::{Repo, RepoSpec};

use crate::cli::{ListArgs, VerifyArgs};
use crate::exit::{self, UsageError};
use crate::output::size;

/// The repository settings, or a usage error naming `command`.
pub fn spec<'c>(config: &'c Config, command: &str) -> Result<&'c RepoSpec> {
    config.target.repository.as_ref().ok_or_else(|| {
        UsageError(format!(
            "`{command}` works on repository targets; this config's target is kind = \"{}\"",
            config.target.kind
        ))
        .into()
    })
}

/// Opens the target's repository.
pub fn open(config: &Config, command: &str) -> Result<Repo> {
    Ok(Repo::open(spec(config, command)?)?)
}

/// `list` on a repository target: its freezeframe snapshots, oldest first.
pub fn list(config: &Config, args: &ListArgs) -> Result<u8> {
    let repo = open(config, "list")?;
    let snaps = repo.snapshots(None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&snaps)?);
        return Ok(exit::OK);
    }
    if snaps.is_empty() {
        println!("no snapshots in {}", repo.location());
        return Ok(exit::OK);
    }
    println!(
        "{:<10} {:<20} {:<14} {:<12} {:<40} {:>8} {:>10} {:>10}",
        "ID", "TIME", "HOST", "CONTAINER", "RUN", "FILES", "SIZE", "ADDED"
    );
    for s in &snaps {
        println!(
            "{:<10} {:<20} {:<14} {:<12} {:<40} {:>8} {:>10} {:>10}{}",
            &s.id[..8.min(s.id.len())],
            s.time,
            s.host,
            s.container,
            s.run.as_deref().unwrap_or("-"),
            s.files,
            size(s.bytes),
            size(s.bytes_added),
            if s.partial { "  PARTIAL" } else { "" }
        );
    }
    Ok(exit::OK)
}

/// `verify` on a repository target: `check`, optionally reading data.
pub fn verify(config: &Config, args: &VerifyArgs) -> Result<u8> {
    if !args.runs.is_empty() {
        return Err(UsageError(
            "a repository is checked as a whole: drop the run names (use --read-data-subset to read part of the data)".into(),
        )
        .into());
    }
    let repo = open(config, "verify")?;
    let report = repo.check(args.read_data, args.read_data_subset.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for w in &report.warnings {
            println!("warning: {w}");
        }
        for e in &report.errors {
            println!("ERROR: {e}");
        }
        let read = match (&args.read_data_subset, args.read_data) {
            (Some(s), _) => format!(", data subset {s} read"),
            (None, true) => ", all data read".into(),
            (None, false) => String::new(),
        };
        println!(
            "repository {}: {} error(s), {} warning(s){read}",
            repo.location(),
            report.errors.len(),
            report.warnings.len()
        );
    }
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
