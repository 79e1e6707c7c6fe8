//! Turning the raw config file into the model: every check that needs more
//! than one key, with the line at fault in the error. One file per table.

mod backup;
mod containers;
mod hooks;
mod target;
mod volumes;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::model::{CgroupRoots, Config, LxcConfig, OpenvzConfig};
use super::raw::RawConfig;
use super::HumanDuration;

pub use backup::MAX_JOBS;

/// A line (1-based) and what is wrong there.
pub(super) type Invalid = (usize, String);

/// The 1-based line of byte `offset` of `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Checks `p` is absolute and has no `..`.
pub(super) fn absolute(p: &Path, what: &str) -> Result<(), String> {
    if !p.is_absolute() {
        return Err(format!("{what} `{}` must be an absolute path", p.display()));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{what} `{}` must not contain `..`", p.display()));
    }
    Ok(())
}

/// Checks the state dir fits the LVM tag that marks a kept base as this
/// state dir's (a base without it would look like an orphan to a sweep).
fn short_state_dir(p: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let len = p.as_os_str().as_bytes().len();
    let max = crate::sys::owner::MAX_STATE_DIR_BYTES;
    if len > max {
        return Err(format!(
            "state_dir is {len} bytes long; at most {max} are allowed (the LVM tags that mark kept snapshots as this state dir's carry it): choose a shorter path"
        ));
    }
    Ok(())
}

/// A duration key within `range`, or its default.
pub(super) fn bounded_duration(
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

/// Turns the raw file into the model, or says which line is wrong and why.
pub(super) fn validate(raw: RawConfig, text: &str) -> Result<Config, Invalid> {
    let state_dir = match raw.state_dir {
        Some(d) => {
            // A relative state dir would change with the working directory:
            // two invocations of one config would not share a lock or a
            // journal.
            let line = line_of(text, d.span().start);
            let d = d.into_inner();
            absolute(&d, "state_dir").map_err(|m| (line, m))?;
            short_state_dir(&d).map_err(|m| (line, m))?;
            d
        }
        None => PathBuf::from("/var/lib/freezeframe"),
    };
    let target = target::target(raw.target, text, &state_dir)?;
    let backup = backup::backup(raw.backup, text)?;
    let volumes = volumes::volumes(raw.volumes, text)?;
    if let (None, Some(v)) = (
        target.repository(),
        volumes.iter().find(|v| v.keep_base == Some(true)),
    ) {
        return Err((
            0,
            format!(
                "volume `{}`: keep_base needs a repository target (tar archives are always whole); remove it or use kind = \"repository\"",
                v.name
            ),
        ));
    }
    let containers = containers::containers(raw.containers, text, &volumes)?;
    let hooks = hooks::hooks(raw.hooks, text)?;
    let at = |table: &str| {
        text.lines()
            .position(|l| l.trim_start().starts_with(table))
            .map_or(0, |i| i + 1)
    };
    let metrics = super::service::metrics(raw.metrics).map_err(|m| (at("[metrics"), m))?;
    let notify = super::service::notify(raw.notify, text).map_err(|m| (at("[notify"), m))?;
    let throttle = super::service::throttle(raw.throttle).map_err(|m| (at("[throttle"), m))?;
    let drill =
        super::service::drill(raw.drill, &state_dir, text).map_err(|m| (at("[drill"), m))?;
    let retention = match raw.retention {
        Some(r) => {
            let line = line_of(text, r.span().start);
            let r = r.into_inner();
            if !r.keeps_something() {
                return Err((
                    line,
                    "[retention] keeps nothing: give at least one of keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly a number above 0".into(),
                ));
            }
            Some(r)
        }
        None => None,
    };
    Ok(Config {
        target,
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
        retention,
        metrics,
        notify,
        throttle,
        drill,
        volumes,
        containers,
    })
}
