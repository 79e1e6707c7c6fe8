//! The validated configuration model.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::HumanDuration;
use crate::sys::HookPhase;

/// A container id: 1–64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
/// Ids become file names in the target, so nothing else is allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

/// Text that is not a [`ContainerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid container id: use 1-64 characters from A-Z a-z 0-9 . _ - \
     and do not start with `.` or `-`"
)]
pub struct BadContainerId(pub String);

impl ContainerId {
    /// Checks `s` and wraps it.
    pub fn new(s: &str) -> Result<Self, BadContainerId> {
        let ok_len = (1..=64).contains(&s.len());
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let ok_start = !s.starts_with(['.', '-']);
        if ok_len && ok_chars && ok_start {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadContainerId(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContainerId {
    type Error = BadContainerId;
    fn try_from(s: String) -> Result<Self, BadContainerId> {
        Self::new(&s)
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How containers are brought to a consistent state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Freeze, snapshot, thaw: the short window this tool exists for.
    Snapshot,
    /// Checkpoint (memory dump kept in the run), snapshot, restore (OpenVZ).
    Checkpoint,
    /// Suspend, snapshot, resume (OpenVZ 7).
    Suspend,
    /// Stop the container, snapshot, start it again.
    Stop,
}

/// Which containers share one freeze window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// All containers of a volume are frozen together, one snapshot per volume.
    Group,
    /// One container at a time, one snapshot per container.
    Each,
}

/// Compression of tar archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd, multithreaded (default).
    Zstd,
    /// bzip2, block-parallel multi-stream.
    Bzip2,
    /// gzip, block-parallel multi-member.
    Gzip,
    /// Plain tar.
    None,
}

/// A compression level the compressor does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("level {level} is out of range for {compression}: allowed {}..={}", compression.levels().start(), compression.levels().end())]
pub struct LevelOutOfRange {
    /// The compressor.
    pub compression: Compression,
    /// The level asked for.
    pub level: i32,
}

impl Compression {
    /// The default level for this compressor.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => 3,
            Compression::Bzip2 => 9,
            Compression::Gzip => 6,
            Compression::None => 0,
        }
    }

    /// The allowed levels.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::Zstd => 1..=19,
            Compression::Bzip2 => 1..=9,
            Compression::Gzip => 0..=9,
            Compression::None => 0..=0,
        }
    }

    /// Checks `level` against [`Compression::levels`].
    pub fn check_level(self, level: i32) -> Result<(), LevelOutOfRange> {
        if self.levels().contains(&level) {
            Ok(())
        } else {
            Err(LevelOutOfRange {
                compression: self,
                level,
            })
        }
    }

    /// Archive file extension, e.g. `tar.zst`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tar.zst",
            Compression::Bzip2 => "tar.bz2",
            Compression::Gzip => "tar.gz",
            Compression::None => "tar",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Snapshot => "snapshot",
            Mode::Checkpoint => "checkpoint",
            Mode::Suspend => "suspend",
            Mode::Stop => "stop",
        })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Group => "group",
            Strategy::Each => "each",
        })
    }
}

/// Snapshot provider of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Read-only btrfs subvolume snapshots.
    Btrfs,
    /// Classic LVM copy-on-write snapshots (`lvcreate -s -L`).
    Lvm,
    /// LVM thin snapshots (`lvcreate -s` of a thin LV).
    LvmThin,
}

/// Size of a classic LVM snapshot's COW area: a share of the origin, or an
/// absolute size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SnapshotSize {
    /// Percent of the origin LV's size.
    Percent(f64),
    /// Bytes.
    Bytes(u64),
}

impl SnapshotSize {
    /// Bytes for an origin of `origin` bytes (never more than the origin:
    /// LVM caps a COW area there anyway).
    pub fn bytes_for(self, origin: u64) -> u64 {
        let b = match self {
            SnapshotSize::Percent(p) => (origin as f64 * p / 100.0).ceil() as u64,
            SnapshotSize::Bytes(b) => b,
        };
        b.min(origin).max(1)
    }
}

/// Text that is not a [`SnapshotSize`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a snapshot size: write a share of the origin like `20%` or a size like `512M` or `2G`"
)]
pub struct BadSnapshotSize(pub String);

impl std::str::FromStr for SnapshotSize {
    type Err = BadSnapshotSize;
    fn from_str(s: &str) -> Result<Self, BadSnapshotSize> {
        let t = s.trim();
        let bad = || BadSnapshotSize(s.to_owned());
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return if p > 0.0 && p <= 100.0 {
                Ok(SnapshotSize::Percent(p))
            } else {
                Err(bad())
            };
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "K" | "k" => 1 << 10,
            "M" | "m" => 1 << 20,
            "G" | "g" => 1 << 30,
            "T" | "t" => 1 << 40,
            _ => return Err(bad()),
        };
        match n.checked_mul(mult) {
            Some(b) if b > 0 => Ok(SnapshotSize::Bytes(b)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SnapshotSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotSize::Percent(p) => write!(f, "{p}%"),
            SnapshotSize::Bytes(b) if b % (1 << 30) == 0 => write!(f, "{}G", b >> 30),
            SnapshotSize::Bytes(b) if b % (1 << 20) == 0 => write!(f, "{}M", b >> 20),
            SnapshotSize::Bytes(b) => write!(f, "{b}"),
        }
    }
}

impl Serialize for SnapshotSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SnapshotSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// LVM settings of a volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LvmOptions {
    /// The origin LV as `vg/lv` (found from the mount table when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lv: Option<String>,
    /// COW size of classic snapshots.
    pub snapshot_size: SnapshotSize,
    /// Warn when a snapshot's COW area (or thin pool) is this full, %.
    pub warn_percent: f64,
    /// Grow a classic snapshot by half its size when it is this full, %
    /// (unset: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoextend_percent: Option<f64>,
    /// Refuse a thin snapshot when the pool's data is fuller than this, %.
    pub thin_max_data_percent: f64,
    /// Refuse a thin snapshot when the pool's metadata is fuller than this, %.
    pub thin_max_metadata_percent: f64,
}

/// Container runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// A plain cgroup holding the container's processes.
    #[default]
    Cgroup,
    /// OpenVZ (`vzctl`, `vzlist`).
    Openvz,
    /// LXC (`lxc-freeze`, `lxc-info`, …).
    Lxc,
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeKind::Cgroup => "cgroup",
            RuntimeKind::Openvz => "openvz",
            RuntimeKind::Lxc => "lxc",
        })
    }
}

/// Defaults for `backup`, each overridable on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupDefaults {
    /// Consistency mode.
    pub mode: Mode,
    /// Freeze strategy.
    pub strategy: Strategy,
    /// Compression.
    pub compress: Compression,
    /// Compression level (`None`: the compressor's default).
    pub level: Option<i32>,
    /// Containers archived at once (0: half the cores, at least 1).
    pub jobs: usize,
    /// Longest a freeze may take before it is undone.
    pub freeze_timeout: HumanDuration,
}

/// Where cgroup hierarchies are (both found in `/proc/self/mountinfo` when unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgroupRoots {
    /// cgroup v2 mount point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2_root: Option<PathBuf>,
    /// cgroup v1 freezer mount point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v1_freezer_root: Option<PathBuf>,
}

/// A volume holding private areas, and how to snapshot it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volume {
    /// Short name, used in snapshot names.
    pub name: String,
    /// Mount point or subvolume path.
    pub path: PathBuf,
    /// Snapshot provider.
    pub provider: ProviderKind,
    /// Where snapshots are created (btrfs: a folder on the same file
    /// system) or mounted (LVM).
    pub snapshot_dir: PathBuf,
    /// LVM settings (lvm and lvm-thin volumes only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub lvm: Option<LvmOptions>,
    /// Keep each run's snapshot as the base of the next (btrfs and
    /// lvm-thin volumes backed up into a repository; `None`: yes on btrfs,
    /// no elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_base: Option<bool>,
}

impl Volume {
    /// Whether runs into a repository keep a base of this volume: btrfs
    /// unless turned off; lvm-thin only when asked for, since a kept thin
    /// snapshot pins pool space as the origin is written, and a full pool
    /// stops every thin volume in it.
    pub fn keeps_base(&self) -> bool {
        match self.provider {
            ProviderKind::Btrfs => self.keep_base != Some(false),
            ProviderKind::LvmThin => self.keep_base == Some(true),
            ProviderKind::Lvm => false,
        }
    }
}

/// A container as configured. For the `openvz` and `lxc` runtimes the
/// private area and config file may be left out: the runtime knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    /// Unique id (OpenVZ CTID, LXC name).
    pub id: ContainerId,
    /// Runtime that freezes and thaws it.
    pub runtime: RuntimeKind,
    /// cgroup path relative to the cgroup root(s) (required for `cgroup`;
    /// for `openvz`, where the container's cgroup is exposed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// The private area (root of its files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private: Option<PathBuf>,
    /// Name of the volume holding `private` (found from the paths if unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// The container's config file, copied into each run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Exclude patterns (gitignore-style, relative to the private area).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Run with `sh -c` inside a drill's restored tree; must exit 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill_check: Option<String>,
}

/// A container resolved for a run: everything known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// Unique id.
    pub id: ContainerId,
    /// Runtime that freezes and thaws it.
    pub runtime: RuntimeKind,
    /// cgroup path relative to the cgroup root(s), if it has one.
    pub cgroup: Option<PathBuf>,
    /// The private area (root of its files).
    pub private: PathBuf,
    /// Name of the volume holding `private`.
    pub volume: String,
    /// The container's config file, copied into each run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Whether it runs now (a stopped container is archived unfrozen).
    pub running: bool,
    /// Exclude patterns: the config's, then the command line's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// `[openvz]`: where OpenVZ keeps its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenvzConfig {
    /// Configuration root (`conf/<CTID>.conf`, `vz.conf`), normally `/etc/vz`.
    pub conf_dir: PathBuf,
}

/// `[lxc]`: where LXC keeps its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LxcConfig {
    /// The containers' folder (`<lxcpath>/<name>/config`), normally `/var/lib/lxc`.
    pub lxcpath: PathBuf,
}

impl Config {
    /// The volume whose path holds `private` (the deepest), or the named one.
    pub fn volume_for(&self, private: &Path, named: Option<&str>) -> Option<&Volume> {
        match named {
            Some(n) => self.volume(n).filter(|v| private.starts_with(&v.path)),
            None => self
                .volumes
                .iter()
                .filter(|v| private.starts_with(&v.path))
                .max_by_key(|v| v.path.components().count()),
        }
    }
}

/// Hook commands (`sh -c`) per phase, and how long one may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HooksConfig {
    /// A hook running longer is killed (with its process group).
    pub timeout: HumanDuration,
    /// Command per phase.
    #[serde(flatten)]
    pub commands: BTreeMap<HookPhase, String>,
}

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Where runs go.
    pub target: super::TargetConfig,
    /// Journal, lock and other state.
    pub state_dir: PathBuf,
    /// Backup defaults.
    pub backup: BackupDefaults,
    /// cgroup mount points.
    pub cgroup: CgroupRoots,
    /// OpenVZ paths.
    pub openvz: OpenvzConfig,
    /// LXC paths.
    pub lxc: LxcConfig,
    /// Hooks.
    pub hooks: HooksConfig,
    /// The keep policy of `prune` and `backup --prune`, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<super::Retention>,
    /// The metrics textfile.
    pub metrics: super::service::MetricsConfig,
    /// Notifications after (and at the start of) each run.
    pub notify: super::service::NotifyConfig,
    /// Limits for the archive phase.
    pub throttle: super::service::ThrottleConfig,
    /// Restore drills.
    pub drill: super::service::DrillConfig,
    /// Volumes.
    #[serde(rename = "volume")]
    pub volumes: Vec<Volume>,
    /// Containers.
    #[serde(rename = "container")]
    pub containers: Vec<ContainerSpec>,
}

impl Config {
    /// The container with this id.
    pub fn container(&self, id: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.id.as_str() == id)
    }

    /// The volume with this name.
    pub fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// Freeze timeout as a [`Duration`].
    pub fn freeze_timeout(&self) -> Duration {
        self.backup.freeze_timeout.0
    }
}
