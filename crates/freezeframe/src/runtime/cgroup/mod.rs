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

    fn handle(&self, ct: &Container) -> Result<String, RuntimeError> {
        let f = self.freezer(ct)?;
        let v = match f.version() {
            FreezerVersion::V1 => "v1",
            FreezerVersion::V2 => "v2",
        };
        Ok(format!("{v}:{}", f.dir().display()))
    }

    fn thaw_handle(&self, handle: &str) -> Result<(), RuntimeError> {
        let (version, dir) = match handle.split_once(':') {
            Some(("v1", d)) => (FreezerVersion::V1, d),
            Some(("v2", d)) => (FreezerVersion::V2, d),
            _ => return Err(RuntimeError::BadHandle(handle.to_owned())),
        };
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            // The cgroup is gone: nothing left to thaw.
            return Ok(());
        }
        Freezer::new(version, dir, handle.to_owned()).thaw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ContainerId;
    use std::fs;

    fn ct(cgroup: &str) -> Container {
        Container {
            id: ContainerId::new("t").unwrap(),
            runtime: RuntimeKind::Cgroup,
            cgroup: cgroup.into(),
            private: "/x".into(),
            volume: "v".into(),
            config: None,
        }
    }

    #[test]
    fn prefers_v2_falls_back_to_v1_and_names_what_it_searched() {
        let root = tempfile::tempdir().unwrap();
        let (v2, v1) = (root.path().join("unified"), root.path().join("freezer"));
        fs::create_dir_all(v2.join("both")).unwrap();
        fs::write(v2.join("both/cgroup.freeze"), "0").unwrap();
        fs::create_dir_all(v1.join("both")).unwrap();
        fs::write(v1.join("both/freezer.state"), "THAWED").unwrap();
        fs::create_dir_all(v1.join("old")).unwrap();
        fs::write(v1.join("old/freezer.state"), "THAWED").unwrap();
        let rt = CgroupRuntime::new(CgroupMounts {
            v2: Some(v2.clone()),
            v1_freezer: Some(v1.clone()),
        });
        assert_eq!(
            rt.freezer(&ct("both")).unwrap().version(),
            FreezerVersion::V2
        );
        assert_eq!(
            rt.freezer(&ct("old")).unwrap().version(),
            FreezerVersion::V1
        );
        rt.freeze(&ct("old"), Duration::from_secs(1)).unwrap();
        assert!(rt.is_frozen(&ct("old")).unwrap());
        rt.thaw(&ct("old")).unwrap();
        assert_eq!(
            fs::read_to_string(v1.join("old/freezer.state")).unwrap(),
            "THAWED"
        );
        let msg = rt.check(&ct("gone")).unwrap_err().to_string();
        assert!(msg.contains("unified") && msg.contains("freezer"), "{msg}");
        let none = CgroupRuntime::new(CgroupMounts::default())
            .check(&ct("x"))
            .unwrap_err()
            .to_string();
        assert!(none.contains("no cgroup mount"), "{none}");
        assert!(!CgroupRuntime::new(CgroupMounts::default()).supports(Mode::Stop));
        // Handles thaw without the config; a vanished cgroup needs no thaw.
        rt.freeze(&ct("both"), Duration::from_secs(1)).ok();
        fs::write(v2.join("both/cgroup.freeze"), "1").unwrap();
        let h = rt.handle(&ct("both")).unwrap();
        assert!(h.starts_with("v2:"), "{h}");
        rt.thaw_handle(&h).unwrap();
        assert_eq!(
            fs::read_to_string(v2.join("both/cgroup.freeze")).unwrap(),
            "0"
        );
        rt.thaw_handle("v2:/nonexistent/cgroup").unwrap();
        assert!(rt.thaw_handle("v9:/x").is_err());
    }
}
