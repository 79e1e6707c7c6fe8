//! Contract suites: what every [`Runtime`](crate::Runtime) and every
//! [`SnapshotProvider`](crate::SnapshotProvider) must do, whatever it
//! drives. The engine, the guardian and `recover` rely on exactly this and
//! nothing more, so a new runtime or provider is done when it passes.
//! Modelled on restic's `internal/backend/test`: one suite, run by the
//! integration tests against each real implementation (cgroup v1 and v2,
//! OpenVZ through its stand-ins, LXC, btrfs, LVM classic and thin in the
//! guest). Built only for tests (feature `contract-tests`).
//!
//! A suite panics with what broke; it leaves nothing behind (a snapshot it
//! made is removed, a container it froze is resumed, also on failure).

// A suite states its checks by panicking, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod runtime;
mod snapshot;

pub use runtime::{runtime_contract, RuntimeSubject};
pub use snapshot::{snapshot_contract, SnapshotSubject};
