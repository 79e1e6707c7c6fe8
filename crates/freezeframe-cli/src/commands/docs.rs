//! `freezeframe completions SHELL` and the hidden `freezeframe man-pages
//! DIR`: generated from the same clap definitions the binary parses with,
//! plus the hand-written freezeframe.toml(5).

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit;

/// The config file's man page (roff), kept beside the default config.
const CONFIG_PAGE: &str = include_str!("../../../../packaging/freezeframe.toml.5");

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "freezeframe", &mut std::io::stdout());
    Ok(exit::OK)
}

/// Writes freezeframe(1), freezeframe-SUBCOMMAND(1) for every visible
/// subcommand, and freezeframe.toml(5) into `dir`.
pub fn man_pages(dir: &Path) -> Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let page = dir.join("freezeframe.toml.5");
    std::fs::write(&page, CONFIG_PAGE).with_context(|| format!("writing {}", page.display()))?;
    Ok(exit::OK)
}
