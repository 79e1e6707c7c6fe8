//! Turning the raw config file into the model: every check that needs more
//! than one key, with the line at fault in the error.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::model::{
    BackupDefaults, CgroupRoots, Compression, Config, ContainerId, ContainerSpec, HooksConfig,
    LvmOptions, LxcConfig, Mode, OpenvzConfig, ProviderKind, RuntimeKind, SnapshotSize, Strategy,
    Target, Volume,
};
use super::raw::{RawConfig, RawTarget};
use super::HumanDuration;
use crate::repo::split::MAX_PARTS;
use crate::repo::{Location, PasswordSource, RepoSpec, S3Options};
use crate::sys::HookPhase;
use toml::Spanned;

type Invalid = (usize, String);

/// Most containers archived at once (`backup.jobs`, `--jobs`).
pub const MAX_JOBS: usize = 256;
/// Shortest and longest freeze a window may take before it is undone.
const FREEZE_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(3600));
/// Shortest and longest a hook may run before it is killed.
const HOOK_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

/// A duration key within `range`, or its default.
fn bounded_duration(
    text: &str,
    value: Option<Spanned<HumanDuration>>,
    key: &str,
    range: (Duration, Duration),
    default: Duration,
) -> Result<HumanDuration, Invalid> {
    let Some(v) = value else {
        return Ok(HumanDuration(default));
    };
    let line = line_of(text, v.span().start);
    let d = v.into_inner();
    if d.0 < range.0 || d.0 > range.1 {
        return Err((
            line,
            format!(
                "{key} = \"{d}\" is out of range: allowed {} to {}",
                HumanDuration(range.0),
                HumanDuration(range.1)
            ),
        ));
    }
    Ok(d)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn absolute(p: &Path, what: &str) -> Result<(), String> {
    if !p.is_absolute() {
        return Err(format!("{what} `{}` must be an absolute path", p.display()));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{what} `{}` must not contain `..`", p.display()));
    }
    Ok(())
}

fn volume_name_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// The repository of a `kind = "repository"` target.
fn repository_spec(rt: &RawTarget, state_dir: &Path) -> Result<RepoSpec, String> {
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
    if let Some(n) = rt.max_parts {
        if !(1..=MAX_PARTS).contains(&n) {
            return Err(format!(
                "target.max_parts = {n}: allowed are 1 (large files are not read separately) to {MAX_PARTS}"
            ));
        }
    }
    Ok(RepoSpec {
        location,
        password,
        cache_dir: Some(cache_dir),
        compression: rt.compression,
        max_parts: rt.max_parts,
    })
}

/// Turns the raw file into the model, or says which line is wrong and why.
pub(super) fn validate(raw: RawConfig, text: &str) -> Result<Config, Invalid> {
    let tline = line_of(text, raw.target.span().start);
    let rt = raw.target.into_inner();
    let kind = rt.kind.clone().unwrap_or_else(|| "tar".into());
    absolute(&rt.path, "target.path").map_err(|m| (tline, m))?;
    let state_dir = match raw.state_dir {
        Some(d) => {
            // A relative state dir would change with the working directory:
            // two invocations of one config would not share a lock or a
            // journal.
            let line = line_of(text, d.span().start);
            let d = d.into_inner();
            absolute(&d, "state_dir").map_err(|m| (line, m))?;
            d
        }
        None => PathBuf::from("/var/lib/freezeframe"),
    };
    let repository = match kind.as_str() {
        "tar" => {
            if rt.repository.is_some()
                || rt.s3.is_some()
                || rt.password_file.is_some()
                || rt.password_env.is_some()
                || rt.password_command.is_some()
                || rt.cache_dir.is_some()
                || rt.compression.is_some()
                || rt.max_parts.is_some()
            {
                return Err((
                    tline,
                    "target.repository, s3, password_*, cache_dir, compression and max_parts apply only to kind = \"repository\"".into(),
                ));
            }
            None
        }
        "repository" => Some(repository_spec(&rt, &state_dir).map_err(|m| (tline, m))?),
        _ => {
            return Err((
                tline,
                format!("target.kind `{kind}` is not supported: allowed `tar`, `repository`"),
            ))
        }
    };

    let compress = raw.backup.compress.unwrap_or(Compression::Zstd);
    if let Some(level) = &raw.backup.level {
        compress.check_level(*level.get_ref()).map_err(|m| {
            (
                line_of(text, level.span().start),
                format!("backup.level: {m}"),
            )
        })?;
    }
    let jobs = match raw.backup.jobs {
        Some(j) => {
            let line = line_of(text, j.span().start);
            let j = *j.get_ref();
            if j > MAX_JOBS as u64 {
                return Err((
                    line,
                    format!(
                        "backup.jobs = {j} is out of range: allowed 0 (half the cores) to {MAX_JOBS} containers archived at once"
                    ),
                ));
            }
            j as usize
        }
        None => 0,
    };
    let freeze_timeout = bounded_duration(
        text,
        raw.backup.freeze_timeout,
        "backup.freeze_timeout",
        FREEZE_TIMEOUT_RANGE,
        Duration::from_secs(10),
    )?;
    let backup = BackupDefaults {
        mode: raw.backup.mode.unwrap_or(Mode::Snapshot),
        strategy: raw.backup.strategy.unwrap_or(Strategy::Group),
        compress,
        level: raw.backup.level.map(|l| l.into_inner()),
        jobs,
        freeze_timeout,
    };

    let mut volumes: Vec<Volume> = Vec::new();
    for v in raw.volumes {
        let line = line_of(text, v.span().start);
        let v = v.into_inner();
        if !volume_name_ok(&v.name) {
            return Err((
                line,
                format!(
                    "volume name `{}` is not valid: use 1-32 characters from A-Z a-z 0-9 _ -",
                    v.name
                ),
            ));
        }
        if volumes.iter().any(|o| o.name == v.name) {
            return Err((line, format!("volume name `{}` is used twice", v.name)));
        }
        absolute(&v.path, "volume.path").map_err(|m| (line, m))?;
        let snapshot_dir = match v.snapshot_dir {
            Some(d) => {
                absolute(&d, "volume.snapshot_dir").map_err(|m| (line, m))?;
                d
            }
            None => v
                .path
                .parent()
                .map(|p| p.join(".freezeframe-snapshots"))
                .ok_or_else(|| {
                    (
                        line,
                        format!(
                            "volume `{}`: path `/` needs an explicit snapshot_dir",
                            v.name
                        ),
                    )
                })?,
        };
        let is_lvm = matches!(v.provider, ProviderKind::Lvm | ProviderKind::LvmThin);
        let lvm_keys = [
            ("lv", v.lv.is_some()),
            ("snapshot_size", v.snapshot_size.is_some()),
            ("warn_percent", v.warn_percent.is_some()),
            ("autoextend_percent", v.autoextend_percent.is_some()),
            ("thin_max_data_percent", v.thin_max_data_percent.is_some()),
            (
                "thin_max_metadata_percent",
                v.thin_max_metadata_percent.is_some(),
            ),
        ];
        if let (false, Some((key, _))) = (is_lvm, lvm_keys.iter().find(|k| k.1)) {
            return Err((
                line,
                format!(
                    "volume `{}`: `{key}` applies only to provider = \"lvm\" or \"lvm-thin\"",
                    v.name
                ),
            ));
        }
        if v.provider == ProviderKind::LvmThin
            && (v.snapshot_size.is_some() || v.autoextend_percent.is_some())
        {
            return Err((line, format!("volume `{}`: thin snapshots have no size; remove snapshot_size/autoextend_percent", v.name)));
        }
        if let Some(lv) = &v.lv {
            if lv.split('/').count() != 2 || lv.split('/').any(str::is_empty) {
                return Err((
                    line,
                    format!("volume `{}`: lv `{lv}` must be written `vg/lv`", v.name),
                ));
            }
        }
        for (key, val) in [
            ("warn_percent", v.warn_percent),
            ("autoextend_percent", v.autoextend_percent),
            ("thin_max_data_percent", v.thin_max_data_percent),
            ("thin_max_metadata_percent", v.thin_max_metadata_percent),
        ] {
            if val.is_some_and(|p| !(p > 0.0 && p <= 100.0)) {
                return Err((
                    line,
                    format!("volume `{}`: {key} must be between 0 and 100", v.name),
                ));
            }
        }
        let lvm = is_lvm.then(|| LvmOptions {
            lv: v.lv,
            snapshot_size: v.snapshot_size.unwrap_or(SnapshotSize::Percent(20.0)),
            warn_percent: v.warn_percent.unwrap_or(80.0),
            autoextend_percent: v.autoextend_percent,
            thin_max_data_percent: v.thin_max_data_percent.unwrap_or(80.0),
            thin_max_metadata_percent: v.thin_max_metadata_percent.unwrap_or(80.0),
        });
        volumes.push(Volume {
            name: v.name,
            path: v.path,
            provider: v.provider,
            snapshot_dir,
            lvm,
        });
    }

    let mut containers: Vec<ContainerSpec> = Vec::new();
    let mut seen = HashSet::new();
    for c in raw.containers {
        let line = line_of(text, c.span().start);
        let c = c.into_inner();
        let id = ContainerId::new(&c.id).map_err(|m| (line, format!("container.id: {m}")))?;
        if !seen.insert(id.clone()) {
            return Err((line, format!("container id `{id}` is used twice")));
        }
        let runtime = c.runtime.unwrap_or_default();
        if runtime == RuntimeKind::Cgroup {
            if c.cgroup.is_none() {
                return Err((line, format!("container `{id}`: the cgroup runtime needs `cgroup`, the container's cgroup path")));
            }
            if c.private.is_none() {
                return Err((line, format!("container `{id}`: the cgroup runtime needs `private`, the container's private area")));
            }
        }
        if let Some(p) = &c.private {
            absolute(p, "container.private")
                .map_err(|m| (line, format!("container `{id}`: {m}")))?;
        }
        if let Some(cg) = &c.cgroup {
            if cg.is_absolute() || cg.components().any(|x| !matches!(x, Component::Normal(_))) {
                return Err((
                    line,
                    format!(
                        "container `{id}`: cgroup `{}` must be a path relative to the cgroup root, \
                         e.g. `machines/{id}`, without `..`",
                        cg.display()
                    ),
                ));
            }
        }
        if let Some(cfg) = &c.config {
            absolute(cfg, "container.config")
                .map_err(|m| (line, format!("container `{id}`: {m}")))?;
        }
        if let Some(name) = &c.volume {
            if !volumes.iter().any(|v| &v.name == name) {
                return Err((
                    line,
                    format!("container `{id}`: volume `{name}` is not defined by any [[volume]]"),
                ));
            }
        }
        // A configured private area must lie in a volume now; a discovered
        // one is checked when a run is planned.
        if let Some(private) = &c.private {
            let holder = match &c.volume {
                Some(name) => volumes
                    .iter()
                    .find(|v| &v.name == name)
                    .filter(|v| private.starts_with(&v.path)),
                None => volumes
                    .iter()
                    .filter(|v| private.starts_with(&v.path))
                    .max_by_key(|v| v.path.components().count()),
            };
            if holder.is_none() {
                return Err((
                    line,
                    match &c.volume {
                        Some(name) => format!("container `{id}`: private `{}` is not inside volume `{name}`", private.display()),
                        None => format!(
                            "container `{id}`: private `{}` is not inside any [[volume]] path; add a [[volume]] whose path holds it",
                            private.display()
                        ),
                    },
                ));
            }
        }
        containers.push(ContainerSpec {
            id,
            runtime,
            cgroup: c.cgroup,
            private: c.private,
            volume: c.volume,
            config: c.config,
        });
    }

    let h = raw.hooks;
    let commands: BTreeMap<HookPhase, String> = [
        (HookPhase::JobStart, h.job_start),
        (HookPhase::BackupStart, h.backup_start),
        (HookPhase::PreFreeze, h.pre_freeze),
        (HookPhase::PostThaw, h.post_thaw),
        (HookPhase::BackupEnd, h.backup_end),
        (HookPhase::BackupFailed, h.backup_failed),
        (HookPhase::JobEnd, h.job_end),
        (HookPhase::JobFailed, h.job_failed),
        (HookPhase::Finally, h.finally),
    ]
    .into_iter()
    .filter_map(|(p, c)| c.map(|c| (p, c)))
    .collect();
    let hooks = HooksConfig {
        timeout: bounded_duration(
            text,
            h.timeout,
            "hooks.timeout",
            HOOK_TIMEOUT_RANGE,
            Duration::from_secs(60),
        )?,
        commands,
    };

    Ok(Config {
        target: Target {
            kind,
            path: rt.path,
            repository,
        },
        state_dir,
        backup,
        cgroup: CgroupRoots {
            v2_root: raw.cgroup.v2_root,
            v1_freezer_root: raw.cgroup.v1_freezer_root,
        },
        openvz: OpenvzConfig {
            conf_dir: raw
                .openvz
                .conf_dir
                .unwrap_or_else(|| PathBuf::from("/etc/vz")),
        },
        lxc: LxcConfig {
            lxcpath: raw
                .lxc
                .lxcpath
                .unwrap_or_else(|| PathBuf::from("/var/lib/lxc")),
        },
        hooks,
        volumes,
        containers,
    })
}
