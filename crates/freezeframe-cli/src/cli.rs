//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use freezeframe::{Compression, HumanDuration, Mode, Strategy, DEFAULT_CONFIG_PATH};

/// Near-zero-downtime backups of Linux containers: freeze, snapshot, thaw,
/// then archive from the snapshot.
#[derive(Debug, Parser)]
#[command(name = "freezeframe", version, after_help = crate::exit::HELP)]
pub struct Cli {
    /// Config file [default: $FREEZEFRAME_CONFIG if set and not empty, else
    /// /etc/freezeframe/freezeframe.toml].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the config is read from: `--config`, else `FREEZEFRAME_CONFIG` (an
/// empty one counts as unset), else [`DEFAULT_CONFIG_PATH`].
impl Cli {
    /// The config file to read.
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| {
                std::env::var_os(CONFIG_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }
}

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "FREEZEFRAME_CONFIG";

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up containers.
    Backup(BackupArgs),
    /// List runs in the target (repository targets: the snapshots).
    List(ListArgs),
    /// Restore a container's private area (and config) into a folder, or
    /// only some paths of it (`--include`).
    Restore(RestoreArgs),
    /// List what a backup holds, like `tar -tv`.
    Ls(LsArgs),
    /// Write one file of a backup to standard output.
    Cat(CatArgs),
    /// Mount every backup read-only (FUSE) at a folder:
    /// `<container>/<run or snapshot time>/...`, and `<container>/latest`.
    /// Serves until unmounted (`freezeframe umount`, `umount`) or stopped
    /// with SIGINT/SIGTERM; in the background unless --foreground.
    Mount(MountArgs),
    /// Unmount a `freezeframe mount`, also one whose process was killed.
    Umount(UmountArgs),
    /// Re-read archives and check their checksums and that they decode
    /// (repository targets: check the repository).
    Verify(VerifyArgs),
    /// Create the repository of a `repository` target.
    Init,
    /// Apply a retention policy per container: remove the backups it does
    /// not keep (tar: their files; repository: forget the snapshots and
    /// prune unreferenced data, in two phases).
    Prune(PruneArgs),
    /// Print the effective configuration.
    ShowConfig,
    /// Show what each configured runtime sees: id, state, private area,
    /// volume and the snapshot provider that would be used.
    ListContainers(ListArgs),
    /// Undo what an interrupted run left: thaw, remove snapshots and
    /// incomplete runs, release a stale lock. Safe to run any time.
    Recover(RecoverArgs),
    /// Each configured container's last good backup, its age and its last
    /// run; exits 0 (OK), 1 (WARNING: the last run failed or was partial)
    /// or 2 (CRITICAL: no good backup younger than --max-age), as
    /// monitoring plugins do.
    Status(StatusArgs),
    /// Prove backups restore: restore the newest (or --run) backup of each
    /// container into a scratch folder, check every checksum, compare the
    /// tree with the backup's listing, run its `drill_check`, remove the
    /// scratch folder; `status` and the metrics show the result.
    Drill(DrillArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (freezeframe(1), one per subcommand, and
    /// freezeframe.toml(5)) into a folder (for packaging).
    #[command(hide = true)]
    ManPages {
        /// The folder (created if needed).
        dir: PathBuf,
    },
    /// Testing and diagnosis aids.
    Debug(DebugArgs),
    /// The guardian of a running backup (started by `backup` itself).
    #[command(hide = true)]
    Guardian(GuardianArgs),
}

/// `drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Container ids (default: every configured container).
    pub ids: Vec<String>,
    /// The backup to drill (a run id, or a repository snapshot id);
    /// default: the newest complete one. Needs exactly one container.
    #[arg(long)]
    pub run: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Wait this long for the host lock held by another run (e.g. `30m`).
    #[arg(long, default_value = "0s")]
    pub lock_wait: HumanDuration,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A good backup older than this is critical (e.g. `26h`, `3d`).
    #[arg(long, default_value = "26h")]
    pub max_age: HumanDuration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Wait this long for the host lock (e.g. `30s`).
    #[arg(long, default_value = "0s")]
    pub lock_wait: HumanDuration,
}

/// `debug`.
#[derive(Debug, Args)]
pub struct DebugArgs {
    /// What to show.
    #[command(subcommand)]
    pub what: DebugCommand,
}

/// `debug` subcommands.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// List the fault-injection points for FREEZEFRAME_FAULT.
    FaultPoints,
    /// Show what changed from one read-only btrfs snapshot to a newer one
    /// of the same subvolume, as the kernel reports it (`btrfs send
    /// --no-data -p`), as JSON: per entry, the byte ranges written, a
    /// truncation, and its path in BASE.
    SendChanges {
        /// The older read-only snapshot.
        base: PathBuf,
        /// The newer read-only snapshot.
        new: PathBuf,
        /// Folder for the scratch stream file [default: the temp dir].
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
}

/// `guardian`: only what undoing needs, never the config file.
#[derive(Debug, Args)]
pub struct GuardianArgs {
    /// PID of the backup process watched.
    #[arg(long)]
    pub parent: u32,
    /// The state dir whose journal lists what to undo.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The cgroup v2 mount.
    #[arg(long)]
    pub cgroup_v2: Option<PathBuf>,
    /// The cgroup v1 freezer mount.
    #[arg(long)]
    pub cgroup_v1_freezer: Option<PathBuf>,
    /// OpenVZ's container config folder.
    #[arg(long)]
    pub openvz_conf_dir: PathBuf,
    /// LXC's container folder.
    #[arg(long)]
    pub lxcpath: PathBuf,
}

/// `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Container ids.
    pub ids: Vec<String>,
    /// Back up every configured container.
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// How containers are made consistent.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Freeze all containers of a volume at once, or one at a time.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Compression.
    #[arg(long, value_enum)]
    pub compress: Option<CompressArg>,
    /// Compression level.
    #[arg(long)]
    pub level: Option<i32>,
    /// Containers archived at once (default: half the cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print the plan and check everything, but freeze and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
    /// Wait this long for the host lock held by another run (e.g. `5m`).
    #[arg(long, default_value = "0s")]
    pub lock_wait: HumanDuration,
    /// After the run, apply the `[retention]` policy of the config.
    #[arg(long)]
    pub prune: bool,
    /// No progress output (warnings and errors still go to stderr; the
    /// summary still to stdout).
    #[arg(long, short)]
    pub quiet: bool,
    /// Leave out entries matching PATTERN (gitignore-style, relative to
    /// each private area, after the config's `exclude`); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Container id.
    pub id: String,
    /// Run to restore from (default: the newest with a good backup);
    /// repository targets also take a snapshot id or a unique prefix.
    #[arg(long)]
    pub run: Option<String>,
    /// Folder to restore into (new or empty); the config goes to `<DIR>.conf`.
    /// With --as only for cgroup containers (the others' runtimes say where).
    #[arg(long, required_unless_present = "new_id")]
    pub to: Option<PathBuf>,
    /// Restore into a non-empty folder, replacing what is there.
    #[arg(long)]
    pub force: bool,
    /// Restore as a new container NEWID its runtime knows: OpenVZ: the
    /// private area at NEWID's VE_PRIVATE and `NEWID.conf`; LXC:
    /// `<lxcpath>/NEWID` with its config rewritten (name, rootfs, MAC
    /// addresses), ready for `lxc-start`; cgroup: into --to, and the
    /// `[[container]]` entry to add is printed. Refuses an existing NEWID.
    #[arg(long = "as", value_name = "NEWID", conflicts_with_all = ["include", "with_memory", "force"])]
    pub new_id: Option<String>,
    /// With --as: keep the IP addresses (by default they are dropped: the
    /// original still has them).
    #[arg(long, requires = "new_id")]
    pub keep_network: bool,
    /// With --as: the copy's host name.
    #[arg(long, requires = "new_id")]
    pub hostname: Option<String>,
    /// With --as, for unprivileged LXC: shift the owners of the restored
    /// tree to this id map (`u 0 200000 65536`, `g …`, or `b …` for both;
    /// may be given more than once) and write it as the copy's lxc.idmap.
    #[arg(long, requires = "new_id", value_name = "RANGE")]
    pub map_ids: Vec<String>,
    /// With --as: the runtime of ID, when ID is no longer configured
    /// (cgroup, openvz, lxc).
    #[arg(long, requires = "new_id", value_parser = parse_runtime)]
    pub runtime: Option<freezeframe::RuntimeKind>,
    /// Also bring the container back from its memory dump (OpenVZ
    /// checkpoints): `vzctl restore ID --dumpfile <DIR>.dump`.
    #[arg(long, conflicts_with = "include")]
    pub with_memory: bool,
    /// Restore only this path of the backup (and the folders on its way);
    /// may be given more than once. Config and dump are then not restored.
    #[arg(long, value_name = "PATH")]
    pub include: Vec<std::ffi::OsString>,
    /// Wait this long for the host lock (e.g. `5m`).
    #[arg(long, default_value = "0s")]
    pub lock_wait: HumanDuration,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Runs to verify (default: all; tar targets only).
    pub runs: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Repository targets: also read and verify all data.
    #[arg(long)]
    pub read_data: bool,
    /// Repository targets: read and verify a subset of the data: `n/m`
    /// (e.g. `1/7`), a percentage (`10%`) or a size (`2G`).
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
}

/// `mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// An empty folder to mount at.
    pub mount_point: PathBuf,
    /// Stay in the foreground (logs to stderr) instead of detaching once
    /// the mount is in place.
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Let every user in, as the backed-up owners and modes allow (those
    /// ids are the container's, not necessarily this host's users).
    #[arg(long)]
    pub allow_other: bool,
}

/// `umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// Where it is mounted.
    pub mount_point: PathBuf,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Container id.
    pub id: String,
    /// Only this path and what is below it.
    pub path: Option<std::ffi::OsString>,
    /// Run (or repository snapshot id) to look into (default: the newest
    /// complete backup).
    #[arg(long)]
    pub run: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// Container id.
    pub id: String,
    /// The file, as `ls` shows it.
    pub path: std::ffi::OsString,
    /// Run (or repository snapshot id) to read from (default: the newest
    /// complete backup).
    #[arg(long)]
    pub run: Option<String>,
}

/// `prune`. Without any `--keep-*`, the `[retention]` of the config applies.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep the newest N backups of each container.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N hours.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest backup of each of the last N years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Only these containers (default: all).
    #[arg(long = "container", value_name = "ID")]
    pub containers: Vec<String>,
    /// Show what would be forgotten and pruned; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Wait this long for the host lock (e.g. `5m`).
    #[arg(long, default_value = "0s")]
    pub lock_wait: HumanDuration,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    /// Freeze, snapshot, thaw.
    Snapshot,
    /// Checkpoint (memory dump kept), snapshot, restore (OpenVZ).
    Checkpoint,
    /// Suspend, snapshot, resume (OpenVZ 7).
    Suspend,
    /// Stop, snapshot, start.
    Stop,
}

/// `--strategy`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StrategyArg {
    /// All containers of a volume in one freeze window.
    Group,
    /// One container per freeze window.
    Each,
}

/// `--compress`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompressArg {
    /// zstd (multithreaded).
    Zstd,
    /// bzip2 (block-parallel).
    Bzip2,
    /// gzip (block-parallel).
    Gzip,
    /// No compression.
    None,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Snapshot => Mode::Snapshot,
            ModeArg::Checkpoint => Mode::Checkpoint,
            ModeArg::Suspend => Mode::Suspend,
            ModeArg::Stop => Mode::Stop,
        }
    }
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Group => Strategy::Group,
            StrategyArg::Each => Strategy::Each,
        }
    }
}

impl From<CompressArg> for Compression {
    fn from(c: CompressArg) -> Self {
        match c {
            CompressArg::Zstd => Compression::Zstd,
            CompressArg::Bzip2 => Compression::Bzip2,
            CompressArg::Gzip => Compression::Gzip,
            CompressArg::None => Compression::None,
        }
    }
}

/// `cgroup`, `openvz` or `lxc`.
fn parse_runtime(s: &str) -> Result<freezeframe::RuntimeKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("`{s}` is not a runtime: use cgroup, openvz or lxc"))
}
