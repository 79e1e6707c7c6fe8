//! freezeframe: near-zero-downtime backups of Linux containers.
//!
//! The crate is layered as described in `ARCHITECTURE.md`; data flows from
//! [`engine`] (plan → lifecycle → report) through the [`runtime`],
//! [`snapshot`], [`archive`] and [`target`] layers down to [`sys`], the only
//! place that talks to the kernel or runs programs.

pub mod archive;
pub mod config;
pub mod engine;
pub mod runtime;
pub mod snapshot;
pub mod state;
pub mod sys;
pub mod target;

/// Version of this library, recorded in every manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
