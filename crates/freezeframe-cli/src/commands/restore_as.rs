//! `freezeframe restore ID --as NEWID`: restore a backup as a new
//! container its runtime knows.

use anyhow::Result;
use freezeframe::{restore_as, Config, ContainerId, CopyRequest, CopySource, IdMap, IdRange};

use super::restore::{start, warn_partial, Started};
use crate::cli::RestoreArgs;
use crate::exit::{self, UsageError};
use crate::output::size;

/// Restores `args.id` as the new container `new_id`.
pub fn run(config: &Config, args: &RestoreArgs, new_id: &str) -> Result<u8> {
    let usage = |m: String| anyhow::Error::from(UsageError(m));
    let source = ContainerId::new(&args.id).map_err(|e| usage(e.to_string()))?;
    let new = ContainerId::new(new_id).map_err(|e| usage(format!("--as: {e}")))?;
    let spec = config.container(&args.id).cloned();
    let kind = match (args.runtime, &spec) {
        (Some(r), Some(s)) if r != s.runtime => {
            return Err(usage(format!(
                "--runtime {r}: {} is configured as a {} container",
                args.id, s.runtime
            )))
        }
        (Some(r), _) => r,
        (None, Some(s)) => s.runtime,
        (None, None) => {
            return Err(usage(format!(
                "container {} is not configured, so its runtime is unknown: add --runtime cgroup|openvz|lxc",
                args.id
            )))
        }
    };
    let mut ranges = Vec::new();
    for m in &args.map_ids {
        ranges.extend(IdRange::parse(m).map_err(|e| usage(format!("--map-ids: {e}")))?);
    }
    let to = match &args.to {
        Some(t) => {
            Some(std::path::absolute(t).map_err(|e| usage(format!("--to {}: {e}", t.display())))?)
        }
        None => None,
    };
    let req = CopyRequest {
        source,
        source_spec: spec,
        new_configured: config.container(new_id).is_some(),
        new_id: new,
        to,
        keep_network: args.keep_network,
        hostname: args.hostname.clone(),
        map_ids: (!ranges.is_empty()).then_some(IdMap(ranges)),
    };
    let Started {
        cancel,
        faults,
        _lock,
    } = start(config, args)?;
    let tools = crate::system::toolbox(config);
    let rt = tools
        .runtime(kind)
        .ok_or_else(|| anyhow::anyhow!("no {kind} runtime on this host"))?;
    let target = crate::system::target(config)?;
    let src = CopySource {
        run: args.run.clone(),
        state_dir: &config.state_dir,
    };
    let r = match restore_as(target.as_ref(), rt.as_ref(), &req, &src, &faults, &cancel) {
        Err(e) if cancel.signal().is_some() => {
            let sig = cancel.signal().unwrap_or(2);
            crate::output::note(format_args!(
                "freezeframe: restore interrupted by signal {sig}: {e}; nothing was registered"
            ));
            return Ok(exit::signal(sig));
        }
        r => r?,
    };
    println!(
        "restored {} from run {} as the new {kind} container {new_id}: {} entries, {}",
        args.id,
        r.restore.run,
        r.restore.extract.entries,
        size(r.restore.extract.bytes)
    );
    println!("files in {}", r.tree.display());
    if let Some(c) = &r.config {
        println!("config written to {}", c.display());
    }
    if let Some(e) = &r.entry {
        println!("add this to the freezeframe config to back it up:\n\n{e}");
    }
    for n in &r.notes {
        crate::output::note(format_args!("note: {n}"));
    }
    let mut partial = r.restore.partial.is_some() || !r.restore.extract.warnings.is_empty();
    if let Some(s) = &r.shifted {
        println!("owners shifted to the new id map: {} entries", s.shifted);
        if s.unmapped_count > 0 {
            partial = true;
            crate::output::note(format_args!(
                "warning: {} entries kept their owners: neither id map gives them (the old container saw them as nobody):",
                s.unmapped_count
            ));
            for u in &s.unmapped {
                crate::output::note(format_args!("  {u}"));
            }
        }
    }
    warn_partial(&r.restore.run, r.restore.partial.as_deref());
    for w in &r.restore.extract.warnings {
        crate::output::note(format_args!("warning: {w}"));
    }
    Ok(if partial { exit::PARTIAL } else { exit::OK })
}
