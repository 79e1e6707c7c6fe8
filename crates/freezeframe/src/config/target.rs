//! `[target]`: where backups go — tar archives in a folder per run, or a
//! restic-format repository — with every default already applied. Plain
//! data: opening a repository or reading its password is the target
//! layer's business.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// zstd level of a new repository unless `target.compression` says
/// otherwise: level 1 backs up about 1.5× faster than zstd's default (3)
/// for a few percent more space (see `docs/BENCHMARKS.md`).
pub const DEFAULT_COMPRESSION: i32 = 1;

/// Average chunk size unless `target.chunk_size` says otherwise: restic's
/// (its chunks are 512 KiB to 8 MiB, 1 MiB on average).
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;

/// The chunk sizes `target.chunk_size` allows (powers of two): smaller
/// chunks make scattered small writes to large files (databases, disk
/// images) cheaper to back up again, for a larger index and a little
/// less compression.
pub const CHUNK_SIZES: std::ops::RangeInclusive<u64> = (64 << 10)..=(1 << 20);

/// Where backups go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetConfig {
    /// Archives in a dated folder per run under `path`.
    Tar {
        /// Folder holding one sub-folder per run.
        path: PathBuf,
    },
    /// A restic-format repository; `path` holds the run reports.
    Repository {
        /// Folder holding one run report (`manifest.json`) per run.
        path: PathBuf,
        /// The repository.
        #[serde(flatten)]
        repository: Box<RepositoryConfig>,
    },
}

impl TargetConfig {
    /// The folder of run folders (archives, or run reports).
    pub fn path(&self) -> &Path {
        match self {
            TargetConfig::Tar { path } | TargetConfig::Repository { path, .. } => path,
        }
    }

    /// The repository, for a repository target.
    pub fn repository(&self) -> Option<&RepositoryConfig> {
        match self {
            TargetConfig::Tar { .. } => None,
            TargetConfig::Repository { repository, .. } => Some(repository),
        }
    }

    /// `tar` or `repository`, as the config writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Tar { .. } => "tar",
            TargetConfig::Repository { .. } => "repository",
        }
    }
}

/// A repository target's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryConfig {
    /// Where it lives.
    pub location: Location,
    /// Where its password comes from.
    pub password: PasswordSource,
    /// Local cache of index and snapshot files.
    pub cache_dir: PathBuf,
    /// zstd level for data written, fixed at `init`.
    pub compression: i32,
    /// Average size of the chunks files are cut into (a power of two in
    /// [`CHUNK_SIZES`]; chunks are half to eight times it).
    pub chunk_size: u64,
}

/// Where the repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder on a local (or mounted) file system.
    Local {
        /// The repository folder.
        path: PathBuf,
    },
    /// An S3-compatible bucket (written `opendal:s3` in the config).
    S3(S3Options),
}

/// S3 settings; the keys fall back to `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` in the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3Options {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL, e.g. `http://127.0.0.1:8333`.
    pub endpoint: String,
    /// Region (any value for most non-AWS stores).
    pub region: String,
    /// Folder inside the bucket holding the repository (`/` for all of it).
    pub root: String,
    /// Access key id (else from the environment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Secret key (else from the environment). Never printed.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
}

impl Location {
    /// How the location reads in messages (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Location::Local { path } => path.display().to_string(),
            Location::S3(s) => format!(
                "s3://{}/{} at {}",
                s.bucket,
                s.root.trim_start_matches('/'),
                s.endpoint
            ),
        }
    }
}

/// Where the repository password comes from (read by the target layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The first line of this file.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// The first line `sh -c` of this command prints.
    Command(String),
}

impl PasswordSource {
    /// Where the password comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::File(p) => format!("file {}", p.display()),
            PasswordSource::Env(v) => format!("environment variable {v}"),
            PasswordSource::Command(c) => format!("command `{c}`"),
        }
    }
}

/// The repository keys as the config file writes them, so that
/// `show-config` prints a config that reads back the same.
#[derive(Serialize)]
struct RepositoryKeys<'a> {
    repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_command: Option<&'a str>,
    cache_dir: &'a Path,
    compression: i32,
    chunk_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3: Option<&'a S3Options>,
}

impl Serialize for RepositoryConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (repository, s3) = match &self.location {
            Location::Local { path } => (path.display().to_string(), None),
            Location::S3(o) => ("opendal:s3".to_owned(), Some(o)),
        };
        let (mut file, mut env, mut command) = (None, None, None);
        match &self.password {
            PasswordSource::File(p) => file = Some(p.as_path()),
            PasswordSource::Env(v) => env = Some(v.as_str()),
            PasswordSource::Command(c) => command = Some(c.as_str()),
        }
        RepositoryKeys {
            repository,
            password_file: file,
            password_env: env,
            password_command: command,
            cache_dir: &self.cache_dir,
            compression: self.compression,
            chunk_size: self.chunk_size,
            s3,
        }
        .serialize(s)
    }
}
