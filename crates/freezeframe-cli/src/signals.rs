//! SIGINT, SIGTERM and SIGHUP become a cancellation the lifecycle honours at
//! its next step boundary: it thaws, removes snapshots and the incomplete
//! run, and the process exits with 128 + the signal.

use freezeframe::Cancel;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Installs the handlers and returns the token they set.
pub fn install() -> std::io::Result<Cancel> {
    let cancel = Cancel::new();
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_usize(sig, cancel.flag(), sig as usize)?;
    }
    Ok(cancel)
}

/// For commands that leave nothing to undo if stopped (restore, prune):
/// once a signal is caught, the process exits `grace` later with 128 +
/// the signal, whatever it is doing — blocked in I/O, or inside a library
/// that never looks at `cancel`. A command that notices `cancel` itself
/// ends sooner, with its own message.
pub fn exit_after(cancel: &Cancel, grace: std::time::Duration, what: &'static str) {
    let cancel = cancel.clone();
    std::thread::spawn(move || loop {
        if let Some(sig) = cancel.signal() {
            std::thread::sleep(grace);
            crate::output::note(format_args!(
                "freezeframe: {what} interrupted by signal {sig}"
            ));
            std::process::exit(i32::from(crate::exit::signal(sig)));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    });
}
