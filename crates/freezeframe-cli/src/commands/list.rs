//! `freezeframe list`.

use anyhow::Result;
use freezeframe::Config;

use crate::cli::ListArgs;
use crate::exit;

/// Lists the target's runs (tar) or snapshots (repository), oldest first.
pub fn run(config: &Config, args: &ListArgs) -> Result<u8> {
    let target = crate::system::target(config)?;
    crate::output::print_report(target.list()?.as_ref(), args.json)?;
    Ok(exit::OK)
}
