//! SIGINT, SIGTERM and SIGHUP become a cancellation the lifecycle honours at
//! its next step boundary: it thaws, removes snapshots and the incomplete
//! run, and the process exits with 128 + the signal.

use freezeframe::sys::Cancel;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Installs the handlers and returns the token they set.
pub fn install() -> std::io::Result<Cancel> {
    let cancel = Cancel::new();
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_usize(sig, cancel.flag(), sig as usize)?;
    }
    Ok(cancel)
}
