//! The LXC runtime: containers under `lxcpath`, their root file system from
//! `lxc.rootfs.path` (`dir:` and `btrfs:` backing stores), the config file
//! `<lxcpath>/<name>/config` copied into each run. Frozen with
//! `lxc-freeze` / `lxc-unfreeze` (never by writing cgroup files behind LXC's
//! back), stopped with `lxc-stop` / `lxc-start`. A backup restored under a
//! new name becomes a container of its own (`copy.rs`).

pub mod copy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::copy::{CopiedConfig, CopyPlan, CopyRequest};
use super::{Listed, Quiesced, Resolved, Runtime, RuntimeError};
use crate::config::{Container, ContainerSpec, Mode, RuntimeKind};
use crate::sys::{Cmd, CommandRunner};

/// LXC through its command-line tools.
pub struct LxcRuntime {
    runner: Arc<dyn CommandRunner>,
    lxc_path: PathBuf,
}

/// The root file system a container config names (`dir:/p`, `btrfs:/p`, `/p`).
pub fn rootfs_of(config: &str) -> Option<PathBuf> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        if k.trim() != "lxc.rootfs.path" {
            return None;
        }
        let v = v.trim();
        let p = match v.split_once(':') {
            Some(("dir" | "btrfs", p)) => p,
            Some((_, _)) if !v.starts_with('/') => return None,
            _ => v,
        };
        Some(PathBuf::from(p))
    })
}

/// The state `lxc-info -s` prints (`RUNNING`, `FROZEN`, `STOPPED`).
pub fn state_of(lxc_info: &str) -> Option<String> {
    lxc_info
        .lines()
        .find_map(|l| l.strip_prefix("State:").map(|s| s.trim().to_owned()))
}

impl LxcRuntime {
    /// A runtime for containers under `lxc_path` (normally `/var/lib/lxc`).
    pub fn new(runner: Arc<dyn CommandRunner>, lxc_path: PathBuf) -> Self {
        Self { runner, lxc_path }
    }

    fn tool(&self, tool: &str, name: &str) -> Cmd {
        Cmd::new(tool)
            .arg("-P")
            .arg(&self.lxc_path)
            .arg("-n")
            .arg(name)
    }

    fn run(&self, name: &str, c: Cmd) -> Result<String, RuntimeError> {
        self.runner
            .run(&c)
            .map(|o| o.stdout)
            .map_err(|source| RuntimeError::Command {
                id: name.into(),
                source,
            })
    }

    fn state(&self, name: &str) -> Result<String, RuntimeError> {
        let out = self.run(name, self.tool("lxc-info", name).arg("-s"))?;
        state_of(&out).ok_or_else(|| RuntimeError::Invalid {
            id: name.into(),
            message: format!("lxc-info printed no state: {out}"),
        })
    }

    fn wait_state(&self, name: &str, want: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let until = Instant::now() + timeout;
        loop {
            let s = self.state(name)?;
            if s == want {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(RuntimeError::Invalid {
                    id: name.into(),
                    message: format!("still {s}, not {want}, after {timeout:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.lxc_path.join(name).join("config")
    }
}

impl Runtime for LxcRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Lxc
    }

    fn supports(&self, mode: Mode) -> bool {
        matches!(mode, Mode::Snapshot | Mode::Stop)
    }

    fn list(&self, _configured: &[ContainerSpec]) -> Result<Vec<Listed>, RuntimeError> {
        let out = self.run(
            "*",
            Cmd::new("lxc-ls").arg("-P").arg(&self.lxc_path).arg("-1"),
        )?;
        out.split_whitespace()
            .map(|name| {
                Ok(Listed {
                    id: name.to_owned(),
                    state: self
                        .state(name)
                        .unwrap_or_else(|e| format!("unknown ({e})")),
                    private: std::fs::read_to_string(self.config_path(name))
                        .ok()
                        .and_then(|c| rootfs_of(&c)),
                })
            })
            .collect()
    }

    fn resolve(&self, spec: &ContainerSpec) -> Result<Resolved, RuntimeError> {
        let name = spec.id.as_str();
        let cfg = self.config_path(name);
        let text = std::fs::read_to_string(&cfg).map_err(|e| RuntimeError::Invalid {
            id: name.into(),
            message: format!(
                "no such LXC container: cannot read {}: {e} (check the name and [lxc] lxcpath)",
                cfg.display()
            ),
        })?;
        let private = match &spec.private {
            Some(p) => p.clone(),
            None => rootfs_of(&text).ok_or_else(|| RuntimeError::Invalid {
                id: name.into(),
                message: format!(
                    "{} has no lxc.rootfs.path of a dir or btrfs backing store",
                    cfg.display()
                ),
            })?,
        };
        Ok(Resolved {
            private,
            config: Some(spec.config.clone().unwrap_or(cfg)),
            running: self.state(name)? != "STOPPED",
        })
    }

    fn check(&self, ct: &Container) -> Result<(), RuntimeError> {
        self.state(ct.id.as_str()).map(|_| ())
    }

    fn plan_quiesce(&self, ct: &Container, mode: Mode) -> Result<Quiesced, RuntimeError> {
        if !self.supports(mode) {
            return Err(RuntimeError::Unsupported {
                id: ct.id.to_string(),
                runtime: RuntimeKind::Lxc,
                mode,
            });
        }
        Ok(Quiesced {
            mode,
            dump: None,
            note: None,
        })
    }

    fn quiesce(&self, ct: &Container, q: &Quiesced, timeout: Duration) -> Result<(), RuntimeError> {
        let name = ct.id.as_str();
        let (tool, want) = if q.mode == Mode::Stop {
            ("lxc-stop", "STOPPED")
        } else {
            ("lxc-freeze", "FROZEN")
        };
        let r = self
            .run(name, self.tool(tool, name))
            .and_then(|_| self.wait_state(name, want, timeout));
        if r.is_err() {
            let _ = self.resume(ct, q);
        }
        r
    }

    fn resume(&self, ct: &Container, q: &Quiesced) -> Result<(), RuntimeError> {
        let name = ct.id.as_str();
        let state = self.state(name)?;
        match (q.mode, state.as_str()) {
            (_, "RUNNING") => Ok(()),
            (Mode::Stop, _) => self
                .run(name, self.tool("lxc-start", name).arg("-d"))
                .map(|_| ()),
            _ => self.run(name, self.tool("lxc-unfreeze", name)).map(|_| ()),
        }
    }

    fn handle(&self, ct: &Container, q: &Quiesced) -> Result<String, RuntimeError> {
        Ok(format!(
            "lxc:{}:{}:{}",
            q.mode,
            ct.id,
            self.lxc_path.display()
        ))
    }

    fn resume_handle(&self, handle: &str) -> Result<(), RuntimeError> {
        let mut f = handle
            .strip_prefix("lxc:")
            .ok_or_else(|| RuntimeError::BadHandle(handle.into()))?
            .splitn(3, ':');
        let (mode, name, path) = (
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
        );
        let rt = LxcRuntime::new(self.runner.clone(), Path::new(path).to_owned());
        if !rt.config_path(name).exists() {
            return Ok(());
        }
        let (tool, extra) = if mode == "stop" {
            ("lxc-start", Some("-d"))
        } else {
            ("lxc-unfreeze", None)
        };
        if rt.state(name)? == "RUNNING" {
            return Ok(());
        }
        let mut c = rt.tool(tool, name);
        if let Some(x) = extra {
            c = c.arg(x);
        }
        rt.run(name, c).map(|_| ())
    }

    fn plan_copy(&self, req: &CopyRequest) -> Result<CopyPlan, RuntimeError> {
        LxcRuntime::plan_copy(self, req)
    }

    fn copy_config(
        &self,
        req: &CopyRequest,
        archived: Option<&str>,
    ) -> Result<CopiedConfig, RuntimeError> {
        LxcRuntime::copy_config(self, req, archived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_and_state_parsing() {
        // From a config lxc-create -t busybox writes (LXC 5.0, Debian 12).
        let cfg = "lxc.apparmor.profile = generated\nlxc.rootfs.path = dir:/var/lib/lxc/c1/rootfs\nlxc.uts.name = \"c1\"\n";
        assert_eq!(
            rootfs_of(cfg),
            Some(PathBuf::from("/var/lib/lxc/c1/rootfs"))
        );
        assert_eq!(
            rootfs_of("lxc.rootfs.path = btrfs:/srv/lxc/c2/rootfs\n"),
            Some(PathBuf::from("/srv/lxc/c2/rootfs"))
        );
        assert_eq!(rootfs_of("lxc.rootfs.path = lvm:/dev/vg/c3\n"), None);
        assert_eq!(state_of("State:          FROZEN\n"), Some("FROZEN".into()));
        assert_eq!(state_of("Name: x\n"), None);
    }
}
