//! System access: running programs, file system calls, cgroupfs discovery and
//! the clock. Everything above this layer reaches the system only through the
//! traits and functions defined here.

pub mod atomic;
pub mod btrfs_ioctl;
pub mod cancel;
pub mod clock;
pub mod command;
pub mod duration;
pub mod faults;
pub mod fiemap;
pub mod fs;
pub mod hooks;
pub mod http;
pub mod mountinfo;
pub mod owner;
pub mod process;
pub mod ranges;
pub mod ratelimit;
pub mod send_stream;
pub mod shown;
pub mod throttle;
pub mod time;

pub use cancel::Cancel;
pub use clock::{Clock, SystemClock};
pub use command::{Cmd, CommandError, CommandOutput, CommandRunner, SystemRunner};
pub use duration::{BadDuration, HumanDuration};
pub use faults::Faults;
pub use hooks::{HookEnv, HookError, HookPhase, Hooks, NoHooks, ShellHooks};
pub use owner::Owner;

/// This host's name (`uname -n`).
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
