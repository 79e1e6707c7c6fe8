//! `freezeframe show-config`.

use anyhow::Result;
use freezeframe::Config;

use crate::exit;

/// Prints the effective config (defaults filled in) as TOML.
pub fn run(config: &Config) -> Result<u8> {
    print!("{}", toml_text(config)?);
    Ok(exit::OK)
}

fn toml_text(config: &Config) -> Result<String> {
    Ok(freezeframe::to_toml(config)?)
}
