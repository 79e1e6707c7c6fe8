//! `freezeframe list`.

use anyhow::Result;
use freezeframe::config::Config;
use freezeframe::target::Store;
use serde_json::json;

use crate::cli::ListArgs;
use crate::exit;
use crate::output::{overall, size};

/// Lists the runs in the target, oldest first.
pub fn run(config: &Config, args: &ListArgs) -> Result<u8> {
    if config.target.repository.is_some() {
        return crate::commands::repository::list(config, args);
    }
    let runs = Store::new(&config.target.path).list()?;
    if args.json {
        let v: Vec<_> = runs
            .iter()
            .map(|r| match &r.manifest {
                Ok(m) => json!({
                    "run": r.id.as_str(),
                    "path": r.path,
                    "complete": true,
                    "result": overall(m),
                    "containers": m.containers.iter().map(|c| json!({
                        "id": c.id, "result": c.result, "freeze_ms": c.freeze_ms,
                        "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => match &r.in_progress {
                    Some(o) => json!({"run": r.id.as_str(), "path": r.path, "complete": false,
                        "in_progress": true, "pid": o.pid}),
                    None => json!({"run": r.id.as_str(), "path": r.path, "complete": false, "problem": e}),
                },
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(exit::OK);
    }
    if runs.is_empty() {
        println!("no runs in {}", config.target.path.display());
        return Ok(exit::OK);
    }
    println!("{:<40} {:<10} {:>10}  CONTAINERS", "RUN", "RESULT", "SIZE");
    for r in &runs {
        match &r.manifest {
            Ok(m) => {
                let total: u64 = m.containers.iter().map(|c| c.bytes_out).sum();
                let cts: Vec<String> = m
                    .containers
                    .iter()
                    .map(|c| match c.freeze_ms {
                        Some(f) => format!("{}({}, {f:.0} ms)", c.id, c.result),
                        None => format!("{}({})", c.id, c.result),
                    })
                    .collect();
                println!(
                    "{:<40} {:<10} {:>10}  {}",
                    r.id.as_str(),
                    overall(m).to_string(),
                    size(total),
                    cts.join(" ")
                );
            }
            Err(e) => match &r.in_progress {
                Some(o) => println!(
                    "{:<40} {:<10} {:>10}  being written by PID {}",
                    r.id.as_str(),
                    "RUNNING",
                    "-",
                    o.pid
                ),
                None => println!(
                    "{:<40} {:<10} {:>10}  {e}",
                    r.id.as_str(),
                    "INCOMPLETE",
                    "-"
                ),
            },
        }
    }
    Ok(exit::OK)
}
