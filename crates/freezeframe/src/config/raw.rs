//! The config file as written: serde types that reject unknown keys.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::model::{Compression, Mode, ProviderKind, RuntimeKind, SnapshotSize, Strategy};
use super::HumanDuration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub target: Spanned<RawTarget>,
    pub state_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub backup: RawBackup,
    #[serde(default)]
    pub cgroup: RawCgroup,
    #[serde(default)]
    pub hooks: RawHooks,
    #[serde(default)]
    pub openvz: RawOpenvz,
    #[serde(default)]
    pub lxc: RawLxc,
    pub retention: Option<Spanned<super::Retention>>,
    #[serde(default)]
    pub metrics: super::service::RawMetrics,
    #[serde(default)]
    pub notify: super::service::RawNotify,
    #[serde(default)]
    pub throttle: super::service::RawThrottle,
    #[serde(default)]
    pub drill: super::service::RawDrill,
    #[serde(default, rename = "volume")]
    pub volumes: Vec<Spanned<RawVolume>>,
    #[serde(default, rename = "container")]
    pub containers: Vec<Spanned<RawContainer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    #[serde(default)]
    pub kind: Option<String>,
    pub path: PathBuf,
    pub repository: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub password_command: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub compression: Option<i32>,
    pub chunk_size: Option<super::service::RawRate>,
    /// No longer used (see `validate::target`).
    pub max_parts: Option<usize>,
    pub s3: Option<RawS3>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawS3 {
    pub bucket: String,
    pub endpoint: String,
    pub region: Option<String>,
    pub root: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub mode: Option<Mode>,
    pub strategy: Option<Strategy>,
    pub compress: Option<Compression>,
    pub level: Option<Spanned<i32>>,
    pub jobs: Option<Spanned<u64>>,
    pub freeze_timeout: Option<Spanned<HumanDuration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCgroup {
    pub v2_root: Option<PathBuf>,
    pub v1_freezer_root: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVolume {
    pub keep_base: Option<bool>,
    pub name: String,
    pub path: PathBuf,
    pub provider: ProviderKind,
    pub snapshot_dir: Option<PathBuf>,
    pub lv: Option<String>,
    pub snapshot_size: Option<SnapshotSize>,
    pub warn_percent: Option<f64>,
    pub autoextend_percent: Option<f64>,
    pub thin_max_data_percent: Option<f64>,
    pub thin_max_metadata_percent: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContainer {
    pub id: String,
    #[serde(default)]
    pub runtime: Option<RuntimeKind>,
    pub cgroup: Option<PathBuf>,
    pub private: Option<PathBuf>,
    pub volume: Option<String>,
    pub config: Option<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub drill_check: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawHooks {
    pub timeout: Option<Spanned<HumanDuration>>,
    pub job_start: Option<String>,
    pub backup_start: Option<String>,
    pub pre_freeze: Option<String>,
    pub post_thaw: Option<String>,
    pub backup_end: Option<String>,
    pub backup_failed: Option<String>,
    pub job_end: Option<String>,
    pub job_failed: Option<String>,
    pub finally: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpenvz {
    pub conf_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLxc {
    pub lxcpath: Option<PathBuf>,
}
