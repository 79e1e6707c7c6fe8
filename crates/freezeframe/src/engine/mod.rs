//! The engine: plan a run, execute it (freeze → snapshot → thaw → archive →
//! release → commit), report it; restore. Pure logic over the traits of the
//! layers below, so it runs the same against fakes and the real system.

pub mod cleanup;
pub mod lifecycle;
pub mod plan;
pub mod recover;
pub mod repo_restore;
mod rest;
pub mod restore;
pub mod toolbox;
pub mod watch;
mod worker;

pub use lifecycle::{execute, ExecError, Observer, Phase, RunResult, SilentObserver};
pub use plan::{plan, BackupRequest, Plan, PlanError};
pub use recover::{recover, thaw_now, RecoverReport, Scope};
pub use repo_restore::restore_from_repository;
pub use restore::{restore, RestoreError, RestoreRequest, RestoreResult};
pub use toolbox::{NoWatchdog, RepositoryWriter, Toolbox, Watchdog};

#[cfg(test)]
mod tests;
