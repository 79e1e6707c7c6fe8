//! Configuration: a TOML file parsed into raw serde types ([`raw`]), then
//! validated into the model the rest of the crate uses ([`model`]).

mod exclude;
pub mod model;
mod raw;
mod retention;
mod service;
mod target;
mod validate;

pub use crate::sys::duration::HumanDuration;
pub use exclude::Excludes;
pub use model::{
    BadContainerId, BadSnapshotSize, Compression, Config, Container, ContainerId, ContainerSpec,
    LevelOutOfRange, LvmOptions, Mode, ProviderKind, RuntimeKind, SnapshotSize, Strategy, Volume,
};
pub use retention::Retention;
pub use service::{MailConfig, MetricsConfig, NotifyConfig, NotifyOn, ThrottleConfig, Webhook};
pub use target::{Location, PasswordSource, RepositoryConfig, S3Options, TargetConfig};
pub use validate::MAX_JOBS;

use std::path::{Path, PathBuf};

/// Where the config is read from when neither `--config` nor
/// `FREEZEFRAME_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/freezeframe/freezeframe.toml";

/// A config file could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source} (pass --config PATH or set FREEZEFRAME_CONFIG)")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or a value of the wrong type or range.
    #[error("invalid config {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message: line, column, key and what is allowed.
        message: String,
    },
    /// The values parse but do not fit together.
    #[error("invalid config {path}, line {line}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the table or key at fault.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates config text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: shorten(e.to_string().trim_end()),
    })?;
    validate::validate(raw, text).map_err(|(line, message)| ConfigError::Invalid {
        path: path.to_owned(),
        line,
        message: shorten(&message),
    })
}

/// Longest line of a config error: the parser quotes the line at fault,
/// and a value may be megabytes long.
const MAX_MESSAGE_LINE: usize = 240;

/// Cuts every line of `message` to [`MAX_MESSAGE_LINE`] characters.
fn shorten(message: &str) -> String {
    message
        .lines()
        .map(|l| match l.char_indices().nth(MAX_MESSAGE_LINE) {
            Some((cut, _)) => format!("{} … ({} more bytes)", &l[..cut], l.len() - cut),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The effective config as TOML (what `show-config` prints).
pub fn to_toml(config: &Config) -> Result<String, toml::ser::Error> {
    toml::to_string_pretty(config)
}

#[cfg(test)]
mod tests;
