//! `[[volume]]`: names, paths and snapshot settings.

use toml::Spanned;

use super::{absolute, line_of, Invalid};
use crate::config::model::{LvmOptions, ProviderKind, SnapshotSize, Volume};
use crate::config::raw::RawVolume;

fn volume_name_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// The `[[volume]]` tables.
pub(super) fn volumes(raw: Vec<Spanned<RawVolume>>, text: &str) -> Result<Vec<Volume>, Invalid> {
    let mut volumes: Vec<Volume> = Vec::new();
    for v in raw {
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
        if v.keep_base == Some(true)
            && !matches!(v.provider, ProviderKind::Btrfs | ProviderKind::LvmThin)
        {
            return Err((
                line,
                format!(
                    "volume `{}`: keep_base applies only to provider = \"btrfs\" or \"lvm-thin\" (a classic LVM snapshot's copy-on-write area would fill between runs); remove it",
                    v.name
                ),
            ));
        }
        volumes.push(Volume {
            name: v.name,
            path: v.path,
            provider: v.provider,
            snapshot_dir,
            lvm,
            keep_base: v.keep_base,
        });
    }
    Ok(volumes)
}
