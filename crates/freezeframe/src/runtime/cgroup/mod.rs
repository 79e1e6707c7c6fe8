//! The `cgroup` runtime: a container is a cgroup holding its processes,
//! frozen through the cgroup freezer (v2 preferred, v1 where v2 has no such
//! cgroup).

pub mod copy;
mod freezer;

pub use freezer::{freeze_all, Freezer, FreezerVersion};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::copy::{CopiedConfig, CopyPlan, CopyRequest};
use super::{Listed, Quiesced, Resolved};
use super::{Runtime, RuntimeError};
use crate::config::{Container, ContainerSpec, Mode, RuntimeKind};
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
        let cgroup = ct.cgroup.clone().ok_or_else(|| RuntimeError::Invalid {
            id: ct.id.to_string(),
            message: "has no cgroup configured".into(),
        })?;
        self.freezer_at(ct.id.as_str(), &cgroup)
    }

    /// The freezer of cgroup `cgroup` (relative to the roots).
    pub fn freezer_at(&self, id: &str, cgroup: &std::path::Path) -> Result<Freezer, RuntimeError> {
        if let Some(root) = &self.mounts.v2 {
            let dir = root.join(cgroup);
            if dir.join("cgroup.freeze").exists() {
                return Ok(Freezer::new(FreezerVersion::V2, dir, id.to_owned()));
            }
        }
        if let Some(root) = &self.mounts.v1_freezer {
            let dir = root.join(cgroup);
            if dir.join("freezer.state").exists() {
                return Ok(Freezer::new(FreezerVersion::V1, dir, id.to_owned()));
            }
        }
        let searched: Vec<PathBuf> = [&self.mounts.v2, &self.mounts.v1_freezer]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Err(RuntimeError::NotFound {
            id: id.to_owned(),
            cgroup: cgroup.to_owned(),
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

impl CgroupRuntime {
    /// Freezes the cgroups of `cts` at once ([`freeze_all`]); a container
    /// whose cgroup cannot be found fails alone.
    pub fn freeze_batch<'c>(
        &self,
        cts: impl Iterator<Item = &'c Container>,
        budget: Duration,
    ) -> Vec<Result<Instant, RuntimeError>> {
        let found: Vec<Result<Freezer, RuntimeError>> = cts.map(|c| self.freezer(c)).collect();
        let freezers: Vec<Freezer> = found
            .iter()
            .filter_map(|f| f.as_ref().ok().cloned())
            .collect();
        let mut frozen = freeze_all(&freezers, budget).into_iter();
        found
            .into_iter()
            .map(|f| match f {
                Ok(_) => frozen.next().expect("one result per freezer"),
                Err(e) => Err(e),
            })
            .collect()
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

    fn list(&self, configured: &[ContainerSpec]) -> Result<Vec<Listed>, RuntimeError> {
        Ok(configured
            .iter()
            .filter(|c| c.runtime == RuntimeKind::Cgroup)
            .map(|c| {
                let state = match c
                    .cgroup
                    .as_deref()
                    .map(|cg| self.freezer_at(c.id.as_str(), cg))
                {
                    Some(Ok(f)) => match f.is_frozen() {
                        Ok(true) => "frozen".to_owned(),
                        Ok(false) => "running".to_owned(),
                        Err(e) => format!("unknown ({e})"),
                    },
                    _ => "no cgroup".to_owned(),
                };
                Listed {
                    id: c.id.to_string(),
                    state,
                    private: c.private.clone(),
                }
            })
            .collect())
    }

    fn resolve(&self, spec: &ContainerSpec) -> Result<Resolved, RuntimeError> {
        let private = spec.private.clone().ok_or_else(|| RuntimeError::Invalid {
            id: spec.id.to_string(),
            message: "has no private area configured".into(),
        })?;
        Ok(Resolved {
            private,
            config: spec.config.clone(),
            running: true,
        })
    }

    fn check(&self, ct: &Container) -> Result<(), RuntimeError> {
        self.freezer(ct).map(|_| ())
    }

    fn plan_quiesce(&self, ct: &Container, mode: Mode) -> Result<Quiesced, RuntimeError> {
        if mode != Mode::Snapshot {
            return Err(RuntimeError::Unsupported {
                id: ct.id.to_string(),
                runtime: RuntimeKind::Cgroup,
                mode,
            });
        }
        Ok(Quiesced {
            mode,
            dump: None,
            note: None,
        })
    }

    fn quiesce(
        &self,
        ct: &Container,
        _q: &Quiesced,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        self.freezer(ct)?.freeze(timeout)
    }

    fn quiesce_all(
        &self,
        batch: &[(&Container, &Quiesced)],
        budget: Duration,
    ) -> Vec<Result<Instant, RuntimeError>> {
        self.freeze_batch(batch.iter().map(|(c, _)| *c), budget)
    }

    fn resume(&self, ct: &Container, _q: &Quiesced) -> Result<(), RuntimeError> {
        self.freezer(ct)?.thaw()
    }

    fn handle(&self, ct: &Container, _q: &Quiesced) -> Result<String, RuntimeError> {
        let f = self.freezer(ct)?;
        let v = match f.version() {
            FreezerVersion::V1 => "v1",
            FreezerVersion::V2 => "v2",
        };
        Ok(format!("{v}:{}", f.dir().display()))
    }

    fn resume_handle(&self, handle: &str) -> Result<(), RuntimeError> {
        thaw_cgroup_handle(handle)
    }

    fn plan_copy(&self, req: &CopyRequest) -> Result<CopyPlan, RuntimeError> {
        CgroupRuntime::plan_copy(self, req)
    }

    fn copy_config(
        &self,
        req: &CopyRequest,
        _archived: Option<&str>,
    ) -> Result<CopiedConfig, RuntimeError> {
        CgroupRuntime::copy_config(self, req)
    }
}

/// Thaws a `v1:<dir>` / `v2:<dir>` handle (shared with runtimes that freeze
/// through cgroups).
pub fn thaw_cgroup_handle(handle: &str) -> Result<(), RuntimeError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ContainerId;
    use std::fs;

    fn ct(cgroup: &str) -> Container {
        Container {
            id: ContainerId::new("t").unwrap(),
            runtime: RuntimeKind::Cgroup,
            cgroup: Some(cgroup.into()),
            private: "/x".into(),
            volume: "v".into(),
            config: None,
            running: true,
            exclude: Vec::new(),
        }
    }

    fn q() -> Quiesced {
        Quiesced {
            mode: Mode::Snapshot,
            dump: None,
            note: None,
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
            v1_blkio: None,
        });
        assert_eq!(
            rt.freezer(&ct("both")).unwrap().version(),
            FreezerVersion::V2
        );
        assert_eq!(
            rt.freezer(&ct("old")).unwrap().version(),
            FreezerVersion::V1
        );
        rt.quiesce(&ct("old"), &q(), Duration::from_secs(1))
            .unwrap();
        assert!(rt.freezer(&ct("old")).unwrap().is_frozen().unwrap());
        rt.resume(&ct("old"), &q()).unwrap();
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
        assert!(rt.plan_quiesce(&ct("both"), Mode::Checkpoint).is_err());
        fs::write(v2.join("both/cgroup.freeze"), "1").unwrap();
        let h = rt.handle(&ct("both"), &q()).unwrap();
        assert!(h.starts_with("v2:"), "{h}");
        rt.resume_handle(&h).unwrap();
        assert_eq!(
            fs::read_to_string(v2.join("both/cgroup.freeze")).unwrap(),
            "0"
        );
        rt.resume_handle("v2:/nonexistent/cgroup").unwrap();
        assert!(rt.resume_handle("v9:/x").is_err());
    }
}
