//! `freezeframe ls`: what a backup holds, like `tar -tv`.

use anyhow::Result;
use freezeframe::{BrowsePath, Config, Which};

use crate::cli::LsArgs;
use crate::exit::{self, UsageError};

/// Lists the entries of a backup (at and below a path).
pub fn run(config: &Config, args: &LsArgs) -> Result<u8> {
    let path = args
        .path
        .as_deref()
        .map(BrowsePath::parse)
        .transpose()
        .map_err(|e| UsageError(e.to_string()))?;
    let target = crate::system::target(config)?;
    let backup = target.find(&Which {
        container: &args.id,
        run: args.run.as_deref(),
    })?;
    let entries = target.ls(&backup, path.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        let mut out = String::new();
        for e in &entries {
            out.push_str(&e.line());
            out.push('\n');
        }
        crate::output::print_text(&out)?;
    }
    Ok(exit::OK)
}
