//! freezeframe: near-zero-downtime backups of Linux containers.
//!
//! A run freezes containers, takes a copy-on-write snapshot of the volume
//! holding their private areas, thaws them at once, and archives each
//! container from the read-only snapshot into a *target* — a folder of tar
//! archives or a restic-format repository — while a separate guardian
//! process makes sure nothing stays frozen, even if this one is killed.
//!
//! # Layers
//!
//! Each layer uses only those before it in this list; a test
//! (`tests/layering.rs`) fails if a module imports from a later one.
//!
//! | layer      | holds                                                              |
//! |------------|--------------------------------------------------------------------|
//! | `sys`      | the only code that runs programs ([`CommandRunner`]) or reads kernel files; clock, cancellation, hooks, fault injection |
//! | `config`   | the TOML file, validated into [`Config`]                           |
//! | `archive`  | the tar stream: walk, write, read, extract safely                 |
//! | `target`   | where backups go, behind one face: [`Target`]                      |
//! | `snapshot` | copy-on-write snapshots: [`SnapshotProvider`] (btrfs, LVM)         |
//! | `runtime`  | freezing and resuming containers: [`Runtime`] (cgroup, OpenVZ, LXC) |
//! | `state`    | the journal of undo steps and the host lock                        |
//! | `engine`   | [`plan`] → [`execute`] (the freeze windows, the workers), [`recover`] |
//!
//! # Use
//!
//! A binary loads a [`Config`], builds a [`Toolbox`] of the host's
//! runtimes and providers, opens the [`Target`], takes the [`HostLock`],
//! and runs [`plan`] then [`execute`]; everything else (list, verify,
//! restore, browse, prune) is one call on the [`Target`]. The items below
//! are the whole public API; the modules are private.

pub(crate) mod archive;
pub(crate) mod config;
pub(crate) mod engine;
pub(crate) mod runtime;
pub(crate) mod snapshot;
pub(crate) mod state;
pub(crate) mod sys;
pub(crate) mod target;

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

/// Version of this library, recorded in every manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// sys: programs, kernel files, clock, cancellation, hooks, faults.
pub use crate::sys::http::{HttpClient, HttpError, SystemHttp};
pub use crate::sys::{
    faults::{BadFaultSpec, FAULT_ENV, FAULT_POINTS},
    host_name,
    mountinfo::{host_cgroup_mounts, read_self as read_mount_table, CgroupMounts, MountEntry},
    process::{alive as process_alive, start_time as process_start_time},
    send_stream::{parse as parse_send_stream, uuid_text, FileChange, SendChanges, StreamError},
    BadDuration, Cancel, Clock, Cmd, CommandError, CommandOutput, CommandRunner, Faults, HookError,
    HookPhase, Hooks, HumanDuration, NoHooks, ShellHooks, SystemClock, SystemRunner,
};

// config: the file and its model.
pub use crate::config::{
    load, parse, to_toml, BadContainerId, BadSnapshotSize, Compression, Config, ConfigError,
    Container, ContainerId, ContainerSpec, LevelOutOfRange, Mode, ProviderKind, Retention,
    RuntimeKind, Strategy, TargetConfig, Volume, DEFAULT_CONFIG_PATH,
};
pub use crate::config::{
    Excludes, MailConfig, MetricsConfig, NotifyConfig, NotifyOn, ThrottleConfig, Webhook,
};

// archive: errors a restore can end with.
pub use crate::archive::{compress::Encoder, ExtractError};

// target: where backups go.
pub use crate::archive::walk::Kind as EntryKind;
pub use crate::target::view::{is_file_name, BackupView, NodeRef, ViewEntry};
pub use crate::target::{
    init, open, report::size as human_size, Backup, BadBrowsePath, BrowsePath, ChangedFiles,
    ExtentRecord, KernelChanges, LsEntry, PruneRequest, RepoBackupRecord, RepoError, Report,
    RestoreError, RestoreRequest, RestoreResult, RunId, SourceId, StoreError, Target, TargetError,
    VerifyRequest, Which,
};

// The manifest: what a run holds (docs/FORMAT.md).
pub use crate::archive::TreeReport;
pub use crate::target::manifest::{
    ContainerRecord, FileKind, FileRecord, FreezeWindow, Manifest, ManifestError, ManifestProblem,
    MountRecord, Outcome, SnapshotRecord, Timings, MANIFEST_VERSION,
};

// snapshot: copy-on-write snapshots.
pub use crate::snapshot::{
    send_changes, BtrfsProvider, ChangesError, LvmProvider, Snapshot, SnapshotError,
    SnapshotProvider,
};

// runtime: freezing containers.
pub use crate::archive::idshift::{
    shift_tree, BadIdRange, IdKind, IdMap, IdRange, IdShift, ShiftReport,
};
pub use crate::runtime::copy::{CopiedConfig, CopyPlan, CopyRequest};
pub use crate::runtime::{CgroupRuntime, LxcRuntime, OpenvzRuntime, Runtime, RuntimeError};

// state: the journal and the host lock.
pub use crate::state::mounts::{
    self as served_mounts, Mounts, MountsError, ServedMount, FS_NAME as MOUNT_FS_NAME,
};
pub use crate::state::{
    assess, metrics::render as render_metrics, status::ago, status::LastRun, Level, StatusBook,
    StatusError, StatusRow,
};
pub use crate::state::{Base, Bases, HostLock, Journal, JournalError, LockError, Step};

// engine: a run, and undoing what a dead one left.
pub use crate::engine::{
    configured, drill, drop_unconfigured_bases, execute, plan, record_drills, record_run, recover,
    remove_stale_scratch, restore_as, thaw_now, BackupRequest, ContainerSummary, CopyError,
    CopyResult, CopySource, DrillRequest, DrillResult, ExecError, NoWatchdog, Notifier, Observer,
    Phase, Plan, PlanError, RecoverReport, RunResult, RunSummary, Scope, SilentObserver,
    StartPings, Toolbox, Watchdog, WatchdogError,
};
