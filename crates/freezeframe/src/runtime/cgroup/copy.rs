//! A cgroup container restored under a new id: its files go where `--to`
//! says, and the `[[container]]` entry to add to freezeframe's config is
//! printed (a bare cgroup has nothing else to register with).

use serde::Serialize;

use super::CgroupRuntime;
use crate::config::{ContainerSpec, RuntimeKind};
use crate::runtime::copy::{refuse_map_ids, CopiedConfig, CopyPlan, CopyRequest};
use crate::runtime::RuntimeError;

#[derive(Serialize)]
struct Entries<'a> {
    container: [&'a ContainerSpec; 1],
}

/// The `[[container]]` entry of the copy: the source's, with the new id,
/// the new private area and the cgroup's last component renamed when it
/// was the old id; and what the operator must still check.
pub fn entry(req: &CopyRequest) -> Result<(String, Vec<String>), String> {
    let mut notes = Vec::new();
    let old = req.source.as_str();
    let mut spec = req.source_spec.clone().unwrap_or(ContainerSpec {
        id: req.source.clone(),
        runtime: RuntimeKind::Cgroup,
        cgroup: None,
        private: None,
        volume: None,
        config: None,
        exclude: Vec::new(),
        drill_check: None,
    });
    spec.id = req.new_id.clone();
    spec.private = req.to.clone();
    spec.volume = None;
    spec.config = None;
    spec.cgroup = match spec.cgroup.take() {
        Some(cg) if cg.file_name().is_some_and(|n| n == old) => {
            Some(cg.with_file_name(req.new_id.as_str()))
        }
        other => {
            notes.push(format!(
                "set `cgroup` in the entry to the cgroup {} runs in",
                req.new_id.as_str()
            ));
            other
        }
    };
    let text = toml::to_string(&Entries { container: [&spec] }).map_err(|e| e.to_string())?;
    Ok((text, notes))
}

impl CgroupRuntime {
    pub(super) fn plan_copy(&self, req: &CopyRequest) -> Result<CopyPlan, RuntimeError> {
        let id = req.new_id.as_str();
        let invalid = |message: String| req.invalid(message);
        refuse_map_ids(req)?;
        if req.new_configured {
            return Err(invalid(format!(
                "{id} is in the config already: pick another id (nothing was written)"
            )));
        }
        let Some(to) = req.to.clone() else {
            return Err(invalid(
                "a cgroup container's files go where you say: add --to DIR (a new folder)".into(),
            ));
        };
        if std::fs::symlink_metadata(&to).is_ok() {
            return Err(invalid(format!(
                "{} exists: restore --as needs a new folder (nothing was written)",
                to.display()
            )));
        }
        Ok(CopyPlan {
            folder: to,
            tree: None,
            folder_mode: 0o700,
            config: None,
        })
    }

    pub(super) fn copy_config(&self, req: &CopyRequest) -> Result<CopiedConfig, RuntimeError> {
        let (text, notes) = entry(req).map_err(|m| req.invalid(m))?;
        Ok(CopiedConfig {
            entry: Some(text),
            notes,
            ..CopiedConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ContainerId;

    #[test]
    fn the_printed_entry_names_the_copy() {
        let id = |s: &str| ContainerId::new(s).unwrap();
        let mut req = CopyRequest {
            source: id("web"),
            source_spec: Some(ContainerSpec {
                id: id("web"),
                runtime: RuntimeKind::Cgroup,
                cgroup: Some("machine.slice/web".into()),
                private: Some("/srv/web".into()),
                volume: Some("srv".into()),
                config: None,
                exclude: vec!["tmp/".into()],
                drill_check: None,
            }),
            new_id: id("web2"),
            new_configured: false,
            to: Some("/srv/web2".into()),
            keep_network: false,
            hostname: None,
            map_ids: None,
        };
        let (text, notes) = entry(&req).unwrap();
        assert_eq!(
            text,
            "[[container]]\nid = \"web2\"\nruntime = \"cgroup\"\ncgroup = \"machine.slice/web2\"\nprivate = \"/srv/web2\"\nexclude = [\"tmp/\"]\n"
        );
        assert!(notes.is_empty());
        req.source_spec = None;
        let (text, notes) = entry(&req).unwrap();
        assert!(!text.contains("cgroup ="), "{text}");
        assert!(notes[0].contains("set `cgroup`"), "{notes:?}");
    }
}
