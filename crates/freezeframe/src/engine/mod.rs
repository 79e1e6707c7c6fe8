//! The engine: plan a run, execute it (freeze → snapshot → thaw → archive →
//! release → commit), report it. Pure logic over the traits of the layers
//! below, so it runs the same against fakes and the real system.

mod bases;
pub mod cleanup;
pub mod copy;
pub mod drill;
pub mod lifecycle;
pub mod monitor;
pub mod notify;
pub mod observer;
pub mod plan;
pub mod recover;
mod rest;
pub mod throttle;
pub mod toolbox;
pub mod watch;
mod window;
mod worker;

pub use copy::{restore_as, CopyError, CopyResult, CopySource};
pub use drill::{drill, remove_stale_scratch, DrillRequest, DrillResult};
pub use lifecycle::{execute, ExecError, RunResult};
pub use monitor::{configured, record_drills, record_run};
pub use notify::{ContainerSummary, Notifier, RunSummary, StartPings};
pub use observer::{Observer, Phase, SilentObserver};
pub use plan::{plan, BackupRequest, Plan, PlanError};
pub use recover::{drop_unconfigured_bases, recover, thaw_now, RecoverReport, Scope};
pub use toolbox::{NoWatchdog, Toolbox, Watchdog, WatchdogError};

#[cfg(test)]
mod tests;
