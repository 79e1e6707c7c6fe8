//! Exit codes, and which error maps to which.

use freezeframe::config::ConfigError;
use freezeframe::engine::{PlanError, RestoreError};
use freezeframe::target::StoreError;

/// Everything worked.
pub const OK: u8 = 0;
/// The command failed: nothing backed up, a restore failed, verify found damage.
pub const FAILURE: u8 = 1;
/// Bad command line or config, unknown container, unsupported mode; nothing was touched.
pub const USAGE: u8 = 2;
/// Some containers failed or had unreadable files; the others are good.
pub const PARTIAL: u8 = 3;
/// The system is not as the config says (private dir missing, volume not
/// btrfs, cgroup not found, target not writable); nothing was frozen.
pub const PRECONDITION: u8 = 4;

/// The table printed in `--help`.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  failure: nothing backed up, restore failed, or verify found damage
  2  usage: bad arguments or config, unknown container, unsupported mode
  3  partial: some containers failed or had unreadable files
  4  precondition: the system is not as configured; nothing was frozen";

/// The exit code for an error that ended a command.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if let Some(e) = err.downcast_ref::<PlanError>() {
        return if e.is_usage() { USAGE } else { PRECONDITION };
    }
    if err.downcast_ref::<ConfigError>().is_some() {
        return USAGE;
    }
    if let Some(e) = err.downcast_ref::<StoreError>() {
        return match e {
            StoreError::NoSuchRun(_) => USAGE,
            StoreError::Target { .. } => PRECONDITION,
            _ => FAILURE,
        };
    }
    if let Some(e) = err.downcast_ref::<RestoreError>() {
        return match e {
            RestoreError::Destination { .. } => USAGE,
            RestoreError::Store(StoreError::NoSuchRun(_)) => USAGE,
            _ => FAILURE,
        };
    }
    FAILURE
}
