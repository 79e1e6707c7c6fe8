//! Exit codes, and which error maps to which.

use freezeframe::{
    ConfigError, CopyError, ExecError, JournalError, LockError, PlanError, RepoError, RestoreError,
    StoreError, TargetError,
};

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

/// Another run holds the host lock (the message names it).
pub const LOCKED: u8 = 5;
/// Interrupted by a signal: 128 + the signal number (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
pub fn signal(sig: usize) -> u8 {
    (128 + sig.min(127)) as u8
}

/// An error in what the operator asked for (maps to [`USAGE`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The table printed in `--help`.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  failure: nothing backed up, restore failed (e.g. the destination is
     full: what was written stays inside the destination), or verify found
     damage
  2  usage: bad arguments or config, unknown container or snapshot,
     unsupported mode
  3  partial: some containers failed or had unreadable files
  4  precondition: the system is not as configured (or the repository
     cannot be opened: not created, wrong password); nothing was frozen
  5  locked: another freezeframe run holds the host lock, or another
     process a repository lock in the way (it is named)
  130, 143, 129  interrupted by SIGINT, SIGTERM, SIGHUP: everything undone
`status` exits as monitoring plugins do: 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN.";

/// The exit code for an error that ended a command.
pub fn code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        return USAGE;
    }
    if let Some(e) = err.downcast_ref::<LockError>() {
        return match e {
            LockError::Held { .. } => LOCKED,
            LockError::Interrupted(_) => signal(2),
            LockError::Io { .. } => PRECONDITION,
        };
    }
    if err.downcast_ref::<JournalError>().is_some() {
        return PRECONDITION;
    }
    if let Some(ExecError::Interrupted { signal: s }) = err.downcast_ref::<ExecError>() {
        return signal(*s);
    }
    if let Some(e) = err.downcast_ref::<PlanError>() {
        return if e.is_usage() { USAGE } else { PRECONDITION };
    }
    if err.downcast_ref::<ConfigError>().is_some() {
        return USAGE;
    }
    if let Some(e) = err.downcast_ref::<StoreError>() {
        return store_code(e);
    }
    if let Some(e) = err.downcast_ref::<RestoreError>() {
        return restore_code(e);
    }
    if let Some(e) = err.downcast_ref::<RepoError>() {
        return repo_code(e);
    }
    if let Some(e) = err.downcast_ref::<TargetError>() {
        return target_code(e);
    }
    if let Some(e) = err.downcast_ref::<CopyError>() {
        return match e {
            CopyError::Runtime(freezeframe::RuntimeError::Command { .. }) => PRECONDITION,
            CopyError::Runtime(_) | CopyError::Destination { .. } => USAGE,
            CopyError::Target(e) => target_code(e),
            CopyError::Journal(_) | CopyError::Register(_) => PRECONDITION,
            CopyError::Io { .. } => FAILURE,
        };
    }
    if err.downcast_ref::<freezeframe::RuntimeError>().is_some() {
        return FAILURE;
    }
    FAILURE
}

fn target_code(e: &TargetError) -> u8 {
    match e {
        TargetError::Store(e) => store_code(e),
        TargetError::Repository(e) => repo_code(e),
        TargetError::Restore(e) => restore_code(e),
        TargetError::Usage(_) | TargetError::NotFound(_) => USAGE,
        TargetError::Interrupted => signal(2),
        TargetError::Io { .. } => FAILURE,
    }
}

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::NoSuchRun(_) => USAGE,
        StoreError::Target { .. } => PRECONDITION,
        _ => FAILURE,
    }
}

fn restore_code(e: &RestoreError) -> u8 {
    match e {
        RestoreError::Destination { .. } => USAGE,
        RestoreError::Store(e) => store_code(e),
        RestoreError::Repository(e) => repo_code(e),
        RestoreError::Extract(freezeframe::ExtractError::Selection(_)) => USAGE,
        _ => FAILURE,
    }
}

fn repo_code(e: &RepoError) -> u8 {
    match e {
        RepoError::NotFound { .. } | RepoError::OtherHostsOnly { .. } | RepoError::Invalid(_) => {
            USAGE
        }
        RepoError::Password(_) | RepoError::Open { .. } => PRECONDITION,
        RepoError::Interrupted => signal(2),
        RepoError::Locked { .. } => LOCKED,
        RepoError::Repository { .. } | RepoError::StreamClosed(_) => FAILURE,
    }
}
