//! The repository on S3-compatible storage: rustic's backend traits over an
//! OpenDAL S3 operator, built with only the S3 service (rustic_backend's
//! own OpenDAL backend compiles two dozen services we do not use).
//!
//! OpenDAL's blocking operator needs a Tokio runtime to run on; this module
//! owns a private one. rustic_core and the rest of freezeframe call in from
//! plain threads, never from inside an async context.

use std::sync::OnceLock;

use bytes::Bytes;
use opendal::blocking::Operator;
use opendal::options::{ReadOptions, WriteOptions};
use opendal::services::S3;
use opendal::{Buffer, ErrorKind as DalKind};
use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};
use tokio::runtime::Runtime;

use crate::config::{Location, S3Options};
use crate::target::repository::RepoError;

/// Pack files live under `data/<first two hex digits>/`.
fn object_path(tpe: FileType, id: &Id) -> String {
    let hex = id.to_hex();
    match tpe {
        FileType::Config => "config".to_owned(),
        FileType::Pack => format!("data/{}/{}", &hex[..2], &*hex),
        _ => format!("{}/{}", tpe.dirname(), &*hex),
    }
}

fn runtime() -> Result<&'static Runtime, RepoError> {
    static RT: OnceLock<Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("freezeframe-s3")
        .enable_all()
        .build()
        .map_err(|e| RepoError::Invalid(format!("starting the S3 client's I/O threads: {e}")))?;
    Ok(RT.get_or_init(|| rt))
}

fn rerr(what: &'static str, path: &str, err: opendal::Error) -> Box<RusticError> {
    RusticError::with_source(ErrorKind::Backend, what, err).attach_context("path", path.to_owned())
}

/// A restic repository in an S3 bucket.
#[derive(Debug, Clone)]
pub(super) struct S3Backend {
    op: Operator,
    location: String,
}

impl S3Backend {
    /// Connects (lazily: nothing is sent until the first request).
    pub(super) fn new(o: &S3Options) -> Result<Self, RepoError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let key = o.access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = o
            .secret_access_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let (Some(key), Some(secret)) = (key, secret) else {
            return Err(RepoError::Invalid(format!(
                "S3 bucket {}: no credentials: set target.s3.access_key_id and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                o.bucket
            )));
        };
        let builder = S3::default()
            .bucket(&o.bucket)
            .endpoint(&o.endpoint)
            .region(&o.region)
            .root(&o.root)
            .access_key_id(&key)
            .secret_access_key(&secret)
            .disable_config_load()
            .disable_ec2_metadata();
        // OpenDAL's services and its HTTP transport (reqwest over the
        // system's OpenSSL), installed once per process.
        opendal::init_default_registry();
        opendal_http_transport_reqwest::install_default();
        let location = Location::S3(o.clone()).describe();
        let bad = |e: opendal::Error| {
            RepoError::Invalid(format!("S3 settings for {location}: {e}; check target.s3"))
        };
        let op = opendal::Operator::new(builder).map_err(bad)?;
        let _enter = runtime()?.enter();
        let op = Operator::new(op).map_err(bad)?;
        Ok(Self { op, location })
    }

    /// Writes `path` only if it does not exist (`If-None-Match: *`). `Ok(false)`:
    /// it existed.
    pub(super) fn create_new(&self, path: &str, data: Vec<u8>) -> Result<bool, opendal::Error> {
        let opts = WriteOptions {
            if_not_exists: true,
            ..Default::default()
        };
        match self.op.write_options(path, data, opts) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == DalKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the store honours `If-None-Match: *`: writes a probe object
    /// twice, expects the second write refused, and removes the probe.
    pub(super) fn honours_conditional_writes(&self) -> Result<bool, RepoError> {
        let probe = format!(
            "freezeframe-probe/{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let fail = |e: opendal::Error| RepoError::Repository {
            location: self.location.clone(),
            what: "probing conditional writes".into(),
            message: e.to_string(),
        };
        let first = self.create_new(&probe, b"1".to_vec()).map_err(fail)?;
        let second = self.create_new(&probe, b"2".to_vec()).map_err(fail)?;
        let kept = self.op.read(&probe).map_err(fail)?.to_vec();
        let _ = self.op.delete(&probe);
        Ok(first && !second && kept == b"1")
    }
}

impl ReadBackend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            return match self.op.stat("config") {
                Ok(m) => Ok(vec![(
                    Id::default(),
                    u32::try_from(m.content_length()).unwrap_or(u32::MAX),
                )]),
                Err(e) if e.kind() == DalKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(rerr("Listing the config file failed.", "config", e)),
            };
        }
        let dir = format!("{}/", tpe.dirname());
        let opts = opendal::options::ListOptions {
            recursive: true,
            ..Default::default()
        };
        let entries = self
            .op
            .list_options(&dir, opts)
            .map_err(|e| rerr("Listing failed.", &dir, e))?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if e.metadata().is_dir() {
                continue;
            }
            let name = e.name().trim_end_matches('/');
            // Anything not named by a hex id is not ours: skip it.
            if let Ok(id) = name.parse::<Id>() {
                let mut size = e.metadata().content_length();
                if size == 0 {
                    size = self
                        .op
                        .stat(e.path())
                        .map_err(|err| rerr("Reading the size failed.", e.path(), err))?
                        .content_length();
                }
                out.push((id, u32::try_from(size).unwrap_or(u32::MAX)));
            }
        }
        Ok(out)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let path = object_path(tpe, id);
        self.op
            .read(&path)
            .map(|b| b.to_bytes())
            .map_err(|e| rerr("Reading failed.", &path, e))
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let path = object_path(tpe, id);
        let opts = ReadOptions {
            range: (u64::from(offset)..u64::from(offset) + u64::from(length)).into(),
            ..Default::default()
        };
        self.op
            .read_options(&path, opts)
            .map(|b| b.to_bytes())
            .map_err(|e| rerr("Reading part failed.", &path, e))
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        object_path(tpe, id)
    }
}

impl WriteBackend for S3Backend {
    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let path = object_path(tpe, id);
        let buf = Buffer::from(content.into_vec());
        if tpe == FileType::Config {
            // Two hosts running `init` at once: only one config may win.
            return match self.create_new(&path, buf.to_vec()) {
                Ok(true) => Ok(()),
                Ok(false) => Err(RusticError::new(
                    ErrorKind::Configuration,
                    "The repository config already exists (another host initialised it first).",
                )),
                Err(e) => Err(rerr("Writing failed.", &path, e)),
            };
        }
        self.op
            .write(&path, buf)
            .map(|_| ())
            .map_err(|e| rerr("Writing failed.", &path, e))
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let path = object_path(tpe, id);
        self.op
            .delete(&path)
            .map_err(|e| rerr("Removing failed.", &path, e))
    }
}

impl super::write::LockDir for S3Backend {
    fn list(&self) -> Result<Vec<String>, super::write::WriteError> {
        let entries = match self.op.list("locks/") {
            Ok(e) => e,
            Err(e) if e.kind() == DalKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(lock_err("listing", "locks/", &e)),
        };
        Ok(entries
            .into_iter()
            .filter(|e| !e.metadata().is_dir())
            .map(|e| e.name().trim_end_matches('/').to_owned())
            .filter(|n| super::write::is_lock_name(n))
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, super::write::WriteError> {
        let path = format!("locks/{name}");
        let len = self
            .op
            .stat(&path)
            .map_err(|e| lock_err("reading", &path, &e))?
            .content_length();
        super::write::check_lock_size(name, len)?;
        self.op
            .read(&path)
            .map(|b| b.to_vec())
            .map_err(|e| lock_err("reading", &path, &e))
    }

    fn write(&self, name: &str, data: Vec<u8>) -> Result<(), super::write::WriteError> {
        let path = format!("locks/{name}");
        self.op
            .write(&path, data)
            .map(|_| ())
            .map_err(|e| lock_err("writing", &path, &e))
    }

    fn remove(&self, name: &str) -> Result<(), super::write::WriteError> {
        let path = format!("locks/{name}");
        self.op
            .delete(&path)
            .map_err(|e| lock_err("removing", &path, &e))
    }
}

fn lock_err(what: &str, path: &str, e: &opendal::Error) -> super::write::WriteError {
    super::write::WriteError::Backend(format!("{what} {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_layout() {
        let id: Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            .parse()
            .unwrap();
        assert_eq!(
            object_path(FileType::Pack, &id),
            format!("data/01/{}", &*id.to_hex())
        );
        assert_eq!(
            object_path(FileType::Snapshot, &id),
            format!("snapshots/{}", &*id.to_hex())
        );
        assert_eq!(object_path(FileType::Config, &id), "config");
    }
}
