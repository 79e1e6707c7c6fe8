//! The `cgroup` runtime: a container is a cgroup holding its processes,
//! frozen through the cgroup freezer (v2 preferred, v1 where v2 has no such
//! cgroup).

mod freezer;

pub use freezer::{Freezer, FreezerVersion};

use std::path::PathBuf;
use std::time::Duration;

use super::{Runtime, RuntimeError};
use crate::config::{Container, Mode, RuntimeKind};
use crate::sys::mountinfo::CgroupMounts;

/// Freezes containers by their cgroup. The cgroup mount points are injected,
/// so tests can point it at a fake cgroupfs in a temp dir.
#[derive(Debug, Clone)]
pub struct CgroupRuntime {
    mounts: CgroupMounts,
}

impl CgroupRuntime {
    /// A runtime using these cgroup mount points.
    pub fn new(mounts: CgroupMounts) -> Self {
        Self { mounts }
    }

    /// The freezer of a container's cgroup: v2 if the cgroup exists there,
    /// else v1.
    pub fn freezer(&self, ct: &Container) -> Result<Freezer, RuntimeError> {
        if let Some(root) = &self.mounts.v2 {
            let dir = root.join(&ct.cgroup);
            if dir.join("cgroup.freeze").exists() {
                return Ok(Freezer::new(FreezerVersion::V2, dir, ct.id.to_string()));
            }
        }
        if let Some(root) = &self.mounts.v1_freezer {
            let dir = root.join(&ct.cgroup);
            if dir.join("freezer.state").exists() {
                return Ok(Freezer::new(FreezerVersion::V1, dir, ct.id.to_string()));
            }
        }
        let searched: Vec<PathBuf> = [&self.mounts.v2, &self.mounts.v1_freezer]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Err(RuntimeError::NotFound {
            id: ct.id.to_string(),
            cgroup: ct.cgroup.clone(),
            searched: if searched.is_empty() {
                "no cgroup mount (neither cgroup2 nor a v1 freezer is mounted)".into()
            } else {
                searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            },
        })
    }
}

impl Runtime for CgroupRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Cgroup
    }

    fn supports(&self, mode: Mode) -> bool {
        // A bare cgroup cannot be started again once its processes are gone.
        mode == Mode::Snapshot
    }

    fn check(&self, ct: &Container) -> Result<(), RuntimeError> {
        self.freezer(ct).map(|_| ())
    }

    fn freeze(&self, ct: &Container, timeout: Duration) -> Result<(), RuntimeError> {
        self.freezer(ct)?.freeze(timeout)
    }

    fn thaw(&self, ct: &Container) -> Result<(), RuntimeError> {
        self.freezer(ct)?.thaw()
    }

    fn is_frozen(&self, ct: &Container) -> Result<bool, RuntimeError> {
        self.freezer(ct)?.is_frozen()
    }
}
