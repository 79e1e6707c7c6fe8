//! System access: running programs, file system calls, cgroupfs discovery and
//! the clock. Everything above this layer reaches the system only through the
//! traits and functions defined here.

pub mod clock;
pub mod command;
pub mod fs;
pub mod mountinfo;

pub use clock::{Clock, SystemClock};
pub use command::{Cmd, CommandError, CommandOutput, CommandRunner, SystemRunner};

/// This host's name (`uname -n`).
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
