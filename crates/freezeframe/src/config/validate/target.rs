//! `[target]`: a tar target or a repository, every default applied.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{absolute, line_of, Invalid};
use crate::config::model::SnapshotSize;
use crate::config::raw::RawTarget;
use crate::config::service::RawRate;
use crate::config::target::{
    Location, PasswordSource, RepositoryConfig, S3Options, TargetConfig, CHUNK_SIZES,
    DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSION,
};

/// The repository of a `kind = "repository"` target.
fn repository(rt: &RawTarget, state_dir: &Path) -> Result<RepositoryConfig, String> {
    let Some(repo) = &rt.repository else {
        return Err(
            "target.repository is required for kind = \"repository\": a folder, or \"opendal:s3\" with a [target.s3] table".into(),
        );
    };
    let location = if repo == "opendal:s3" {
        let Some(s3) = &rt.s3 else {
            return Err("target.repository = \"opendal:s3\" needs a [target.s3] table with bucket and endpoint".into());
        };
        if s3.bucket.is_empty() || s3.endpoint.is_empty() {
            return Err("target.s3.bucket and target.s3.endpoint must not be empty".into());
        }
        Location::S3(S3Options {
            bucket: s3.bucket.clone(),
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone().unwrap_or_else(|| "us-east-1".into()),
            root: s3.root.clone().unwrap_or_else(|| "/".into()),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.clone(),
        })
    } else if let Some(other) = repo.strip_prefix("opendal:") {
        return Err(format!(
            "target.repository `opendal:{other}` is not supported: use a folder or \"opendal:s3\""
        ));
    } else {
        if rt.s3.is_some() {
            return Err("[target.s3] applies only to target.repository = \"opendal:s3\"".into());
        }
        let path = PathBuf::from(repo);
        absolute(&path, "target.repository")?;
        Location::Local { path }
    };
    let password = match (&rt.password_file, &rt.password_env, &rt.password_command) {
        (Some(f), None, None) => {
            absolute(f, "target.password_file")?;
            PasswordSource::File(f.clone())
        }
        (None, Some(e), None) => PasswordSource::Env(e.clone()),
        (None, None, Some(c)) => PasswordSource::Command(c.clone()),
        (None, None, None) => {
            return Err(
                "the repository needs a password: set one of target.password_file, password_env or password_command".into(),
            )
        }
        _ => {
            return Err(
                "set only one of target.password_file, password_env and password_command".into(),
            )
        }
    };
    let cache_dir = match &rt.cache_dir {
        Some(c) => {
            absolute(c, "target.cache_dir")?;
            c.clone()
        }
        None => state_dir.join("repo-cache"),
    };
    if let Some(l) = rt.compression {
        if !(-7..=22).contains(&l) {
            return Err(format!(
                "target.compression = {l}: allowed are zstd levels 1 to 22, the fast levels -7 to -1, and 0 (zstd's default, 3)"
            ));
        }
    }
    // `max_parts` split large containers into parts before freezeframe
    // wrote the repository itself; it is accepted and has no effect.
    Ok(RepositoryConfig {
        location,
        password,
        cache_dir,
        compression: rt.compression.unwrap_or(DEFAULT_COMPRESSION),
        chunk_size: chunk_size(rt.chunk_size.as_ref())?,
    })
}

/// `target.chunk_size`: a power of two in [`CHUNK_SIZES`].
fn chunk_size(raw: Option<&RawRate>) -> Result<u64, String> {
    let (bytes, text) = match raw {
        None => return Ok(DEFAULT_CHUNK_SIZE),
        Some(RawRate::Bytes(b)) => (Some(*b), b.to_string()),
        Some(RawRate::Text(t)) => match t.parse::<SnapshotSize>() {
            Ok(SnapshotSize::Bytes(b)) => (Some(b), format!("\"{t}\"")),
            _ => (None, format!("\"{t}\"")),
        },
    };
    match bytes {
        Some(b) if b.is_power_of_two() && CHUNK_SIZES.contains(&b) => Ok(b),
        _ => Err(format!(
            "target.chunk_size = {text}: allowed are \"64K\", \"128K\", \"256K\", \"512K\" and \"1M\" (the default, restic's); smaller chunks suit databases and disk images with scattered small writes"
        )),
    }
}

/// The `[target]` table.
pub(super) fn target(
    raw: Spanned<RawTarget>,
    text: &str,
    state_dir: &Path,
) -> Result<TargetConfig, Invalid> {
    let tline = line_of(text, raw.span().start);
    let rt = raw.into_inner();
    let kind = rt.kind.clone().unwrap_or_else(|| "tar".into());
    absolute(&rt.path, "target.path").map_err(|m| (tline, m))?;
    match kind.as_str() {
        "tar" => {
            if rt.repository.is_some()
                || rt.s3.is_some()
                || rt.password_file.is_some()
                || rt.password_env.is_some()
                || rt.password_command.is_some()
                || rt.cache_dir.is_some()
                || rt.compression.is_some()
                || rt.chunk_size.is_some()
                || rt.max_parts.is_some()
            {
                return Err((
                    tline,
                    "target.repository, s3, password_*, cache_dir, compression, chunk_size and max_parts apply only to kind = \"repository\"".into(),
                ));
            }
            Ok(TargetConfig::Tar { path: rt.path })
        }
        "repository" => Ok(TargetConfig::Repository {
            repository: Box::new(repository(&rt, state_dir).map_err(|m| (tline, m))?),
            path: rt.path,
        }),
        _ => Err((
            tline,
            format!("target.kind `{kind}` is not supported: allowed `tar`, `repository`"),
        )),
    }
}
