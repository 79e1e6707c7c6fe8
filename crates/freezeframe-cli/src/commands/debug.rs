//! `freezeframe debug`.

use std::path::Path;

use anyhow::Result;
use freezeframe::{send_changes, uuid_text, SendChanges, SystemRunner, FAULT_ENV, FAULT_POINTS};
use serde_json::json;

use crate::cli::DebugCommand;
use crate::exit;

/// Runs a debug subcommand.
pub fn run(what: &DebugCommand) -> Result<u8> {
    match what {
        DebugCommand::FaultPoints => {
            println!("{FAULT_ENV}=<point> kills the process (SIGKILL) at <point>;");
            println!("{FAULT_ENV}=<point>:hang=<duration> stalls it there. A testing aid.\n");
            for (name, what) in FAULT_POINTS {
                println!("{name:<22} {what}");
            }
        }
        DebugCommand::SendChanges { base, new, scratch } => {
            let scratch = scratch.clone().unwrap_or_else(std::env::temp_dir);
            let changes = send_changes(&SystemRunner, base, new, &scratch)?;
            println!("{}", serde_json::to_string_pretty(&changes_json(&changes))?);
        }
    }
    Ok(exit::OK)
}

/// The changes as JSON (paths lossily as text).
fn changes_json(c: &SendChanges) -> serde_json::Value {
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let entries: Vec<_> = c
        .entries
        .iter()
        .map(|(path, f)| {
            json!({
                "path": text(path),
                "origin": f.origin.as_deref().map(text),
                "in_place": f.in_place(path),
                "ranges": f.ranges,
                "range_bytes": f.range_bytes(),
                "truncated": f.truncated,
                "metadata": f.metadata,
                "renamed": f.renamed,
                "linked": f.linked,
            })
        })
        .collect();
    json!({
        "uuid": uuid_text(&c.uuid),
        "ctransid": c.ctransid,
        "base_uuid": uuid_text(&c.base_uuid),
        "base_ctransid": c.base_ctransid,
        "entries": entries,
    })
}
