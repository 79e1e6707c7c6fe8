//! `[[container]]`: ids, runtimes, paths, and the volume holding each.

use std::collections::HashSet;
use std::path::Component;

use toml::Spanned;

use super::{absolute, line_of, Invalid};
use crate::config::model::{ContainerId, ContainerSpec, RuntimeKind, Volume};
use crate::config::raw::RawContainer;

/// The `[[container]]` tables.
pub(super) fn containers(
    raw: Vec<Spanned<RawContainer>>,
    text: &str,
    volumes: &[Volume],
) -> Result<Vec<ContainerSpec>, Invalid> {
    let mut containers: Vec<ContainerSpec> = Vec::new();
    let mut seen = HashSet::new();
    for c in raw {
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
        crate::config::Excludes::new(&c.exclude)
            .map_err(|e| (line, format!("container `{id}`: {e}")))?;
        containers.push(ContainerSpec {
            id,
            runtime,
            cgroup: c.cgroup,
            private: c.private,
            volume: c.volume,
            config: c.config,
            exclude: c.exclude,
            drill_check: c.drill_check,
        });
    }
    Ok(containers)
}
