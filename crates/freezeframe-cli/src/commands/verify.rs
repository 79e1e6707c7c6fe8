//! `freezeframe verify`.

use anyhow::Result;
use freezeframe::{Config, VerifyRequest};

use crate::cli::VerifyArgs;
use crate::exit;

/// Re-reads what the target stores and checks it.
pub fn run(config: &Config, args: &VerifyArgs) -> Result<u8> {
    let target = crate::system::target(config)?;
    let report = target.verify(&VerifyRequest {
        runs: args.runs.clone(),
        read_data: args.read_data,
        read_data_subset: args.read_data_subset.clone(),
    })?;
    crate::output::print_report(report.as_ref(), args.json)?;
    Ok(if report.damaged() {
        exit::FAILURE
    } else {
        exit::OK
    })
}
