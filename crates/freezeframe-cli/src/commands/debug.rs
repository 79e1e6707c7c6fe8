//! `freezeframe debug`.

use anyhow::Result;
use freezeframe::{FAULT_ENV, FAULT_POINTS};

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
    }
    Ok(exit::OK)
}
