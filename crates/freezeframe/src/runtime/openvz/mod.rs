//! The OpenVZ runtime, the classic recipe step for step: containers from
//! `vzlist`, their private area from `VE_PRIVATE` (`<conf_dir>/conf/<CTID>.conf`,
//! then `<conf_dir>/vz.conf`), the config file `<conf_dir>/conf/<CTID>.conf`
//! copied into each run. Modes: `checkpoint` (`vzctl chkpnt` with a dump
//! kept in the run, then `vzctl restore`), `suspend` (`vzctl suspend` /
//! `resume`, OpenVZ 7), `stop` (`vzctl stop` / `start`), and `snapshot`
//! (the container's cgroup freezer where it is exposed — `cgroup` in the
//! config — else a checkpoint, said in the manifest).

pub mod copy;
pub mod parse;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parse::{expand_ctid, shell_vars, vzlist_columns, vzlist_json, VzRow};

use super::cgroup::{thaw_cgroup_handle, CgroupRuntime};
use super::copy::{CopiedConfig, CopyPlan, CopyRequest};
use super::{Listed, Quiesced, Resolved, Runtime, RuntimeError};
use crate::config::{Container, ContainerSpec, Mode, RuntimeKind};
use crate::sys::{Cmd, CommandRunner};

/// OpenVZ through `vzctl` and `vzlist`.
pub struct OpenvzRuntime {
    runner: Arc<dyn CommandRunner>,
    conf_dir: PathBuf,
    cgroups: CgroupRuntime,
}

fn cmd_err(id: &str, source: crate::sys::CommandError) -> RuntimeError {
    RuntimeError::Command {
        id: id.to_owned(),
        source,
    }
}

/// The `vzctl` command bringing `id` to rest in `q.mode`.
pub fn quiesce_cmd(id: &str, q: &Quiesced) -> Option<Cmd> {
    let c = Cmd::new("vzctl");
    match q.mode {
        Mode::Snapshot => None,
        Mode::Checkpoint => Some(
            c.arg("chkpnt")
                .arg(id)
                .arg("--dumpfile")
                .arg(q.dump.clone().unwrap_or_default()),
        ),
        Mode::Suspend => Some(c.arg("suspend").arg(id)),
        Mode::Stop => Some(c.arg("stop").arg(id)),
    }
}

/// The `vzctl` command letting `id` run again after `mode`.
pub fn resume_cmd(id: &str, mode: Mode, dump: Option<&Path>) -> Option<Cmd> {
    let c = Cmd::new("vzctl");
    match mode {
        Mode::Snapshot => None,
        Mode::Checkpoint => Some(
            c.arg("restore")
                .arg(id)
                .arg("--dumpfile")
                .arg(dump.unwrap_or(Path::new(""))),
        ),
        Mode::Suspend => Some(c.arg("resume").arg(id)),
        Mode::Stop => Some(c.arg("start").arg(id)),
    }
}

impl OpenvzRuntime {
    /// A runtime reading OpenVZ config from `conf_dir` (normally `/etc/vz`)
    /// and freezing exposed cgroups through `cgroups`.
    pub fn new(runner: Arc<dyn CommandRunner>, conf_dir: PathBuf, cgroups: CgroupRuntime) -> Self {
        Self {
            runner,
            conf_dir,
            cgroups,
        }
    }

    fn ct_conf(&self, id: &str) -> PathBuf {
        self.conf_dir.join("conf").join(format!("{id}.conf"))
    }

    fn var(&self, id: &str, key: &str) -> Option<String> {
        for f in [self.ct_conf(id), self.conf_dir.join("vz.conf")] {
            if let Some(v) = std::fs::read_to_string(f)
                .ok()
                .map(|t| shell_vars(&t))
                .and_then(|m| m.get(key).cloned())
            {
                return Some(expand_ctid(&v, id));
            }
        }
        None
    }

    /// `vzlist -a`, as JSON where the installed vzlist has `-j`, else columns.
    pub fn vzlist(&self) -> Result<Vec<VzRow>, RuntimeError> {
        let json = Cmd::new("vzlist").arg("-a").arg("-j");
        match self.runner.run(&json) {
            Ok(out) => vzlist_json(&out.stdout).map_err(|message| RuntimeError::Invalid {
                id: "*".into(),
                message,
            }),
            Err(e @ crate::sys::CommandError::Spawn { .. }) => Err(cmd_err("*", e)),
            Err(_) => {
                let cols = Cmd::new("vzlist")
                    .arg("-a")
                    .arg("-H")
                    .arg("-o")
                    .arg("ctid,status,private");
                let out = self.runner.run(&cols).map_err(|e| cmd_err("*", e))?;
                vzlist_columns(&out.stdout).map_err(|message| RuntimeError::Invalid {
                    id: "*".into(),
                    message,
                })
            }
        }
    }

    fn row(&self, id: &str) -> Result<VzRow, RuntimeError> {
        let rows = self.vzlist()?;
        let known: Vec<String> = rows.iter().map(|r| r.ctid.clone()).collect();
        rows.into_iter()
            .find(|r| r.ctid == id)
            .ok_or_else(|| RuntimeError::Invalid {
                id: id.to_owned(),
                message: format!(
                    "no such container: vzlist -a shows {}; check the CTID",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            })
    }
}

impl Runtime for OpenvzRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Openvz
    }

    fn supports(&self, _mode: Mode) -> bool {
        true
    }

    fn list(&self, _configured: &[ContainerSpec]) -> Result<Vec<Listed>, RuntimeError> {
        Ok(self
            .vzlist()?
            .into_iter()
            .map(|r| Listed {
                private: r
                    .private
                    .clone()
                    .or_else(|| self.var(&r.ctid, "VE_PRIVATE"))
                    .map(PathBuf::from),
                id: r.ctid,
                state: r.status,
            })
            .collect())
    }

    fn resolve(&self, spec: &ContainerSpec) -> Result<Resolved, RuntimeError> {
        let id = spec.id.as_str();
        let row = self.row(id)?;
        let private = spec
            .private
            .clone()
            .or_else(|| row.private.clone().map(PathBuf::from))
            .or_else(|| self.var(id, "VE_PRIVATE").map(PathBuf::from))
            .ok_or_else(|| RuntimeError::Invalid {
                id: id.to_owned(),
                message: format!(
                    "no VE_PRIVATE in {} or {}",
                    self.ct_conf(id).display(),
                    self.conf_dir.join("vz.conf").display()
                ),
            })?;
        let conf = self.ct_conf(id);
        Ok(Resolved {
            private,
            config: spec
                .config
                .clone()
                .or_else(|| conf.exists().then_some(conf)),
            running: row.status == "running",
        })
    }

    fn check(&self, ct: &Container) -> Result<(), RuntimeError> {
        if ct.cgroup.is_some() {
            self.cgroups.freezer(ct)?;
        }
        Ok(())
    }

    fn plan_quiesce(&self, ct: &Container, mode: Mode) -> Result<Quiesced, RuntimeError> {
        let id = ct.id.as_str();
        let dump = || {
            PathBuf::from(self.var(id, "DUMPDIR").unwrap_or_else(|| "/vz/dump".into()))
                .join(format!("Dump.{id}"))
        };
        Ok(match mode {
            Mode::Snapshot if ct.cgroup.is_some() => Quiesced { mode, dump: None, note: None },
            Mode::Snapshot => Quiesced {
                mode: Mode::Checkpoint,
                dump: Some(dump()),
                note: Some(format!("container {id} exposes no cgroup to freeze: checkpointed with vzctl chkpnt instead")),
            },
            Mode::Checkpoint => Quiesced { mode, dump: Some(dump()), note: None },
            Mode::Suspend | Mode::Stop => Quiesced { mode, dump: None, note: None },
        })
    }

    fn quiesce(&self, ct: &Container, q: &Quiesced, timeout: Duration) -> Result<(), RuntimeError> {
        let id = ct.id.as_str();
        match quiesce_cmd(id, q) {
            None => self.cgroups.freezer(ct)?.freeze(timeout),
            Some(c) => {
                if let Some(d) = q.dump.as_deref().and_then(Path::parent) {
                    std::fs::create_dir_all(d).map_err(|source| RuntimeError::Io {
                        id: id.into(),
                        op: "create",
                        path: d.to_owned(),
                        source,
                    })?;
                }
                self.runner.run(&c).map(|_| ()).map_err(|e| cmd_err(id, e))
            }
        }
    }

    fn quiesce_all(
        &self,
        batch: &[(&Container, &Quiesced)],
        budget: Duration,
    ) -> Vec<Result<Instant, RuntimeError>> {
        // Containers frozen through their cgroup are frozen together; the
        // ones `vzctl` brings to rest run beside them.
        let (frozen, commanded): (Vec<usize>, Vec<usize>) = (0..batch.len())
            .partition(|&i| quiesce_cmd(batch[i].0.id.as_str(), batch[i].1).is_none());
        let by_cmd: Vec<(&Container, &Quiesced)> = commanded.iter().map(|&i| batch[i]).collect();
        let (by_cgroup, by_cmd) = std::thread::scope(|s| {
            let cmds = s.spawn(|| crate::runtime::quiesce_each(self, &by_cmd, budget));
            let cgroups = self
                .cgroups
                .freeze_batch(frozen.iter().map(|&i| batch[i].0), budget);
            let cmds = cmds.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (cgroups, cmds)
        });
        let mut out: Vec<Option<Result<Instant, RuntimeError>>> =
            (0..batch.len()).map(|_| None).collect();
        for (i, r) in frozen.into_iter().zip(by_cgroup) {
            out[i] = Some(r);
        }
        for (i, r) in commanded.into_iter().zip(by_cmd) {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.expect("every container has a result"))
            .collect()
    }

    fn resume(&self, ct: &Container, q: &Quiesced) -> Result<(), RuntimeError> {
        let id = ct.id.as_str();
        match resume_cmd(id, q.mode, q.dump.as_deref()) {
            None => self.cgroups.freezer(ct)?.thaw(),
            Some(c) => {
                // Resuming a container that runs already is not an error.
                if self.row(id).map(|r| r.status == "running").unwrap_or(false) {
                    return Ok(());
                }
                self.runner.run(&c).map(|_| ()).map_err(|e| cmd_err(id, e))
            }
        }
    }

    fn handle(&self, ct: &Container, q: &Quiesced) -> Result<String, RuntimeError> {
        if q.mode == Mode::Snapshot {
            return self.cgroups.handle(ct, q);
        }
        let dump = q
            .dump
            .as_deref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        Ok(format!("openvz:{}:{}:{dump}", q.mode, ct.id))
    }

    fn resume_handle(&self, handle: &str) -> Result<(), RuntimeError> {
        let Some(rest) = handle.strip_prefix("openvz:") else {
            return thaw_cgroup_handle(handle);
        };
        let mut f = rest.splitn(3, ':');
        let (mode, id, dump) = (
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
        );
        let mode: Mode = serde_json::from_value(serde_json::Value::String(mode.into()))
            .map_err(|_| RuntimeError::BadHandle(handle.into()))?;
        match self.row(id) {
            Err(_) => Ok(()), // gone: nothing to resume
            Ok(r) if r.status == "running" => Ok(()),
            Ok(_) => match resume_cmd(id, mode, (!dump.is_empty()).then(|| Path::new(dump))) {
                None => Ok(()),
                Some(c) => self.runner.run(&c).map(|_| ()).map_err(|e| cmd_err(id, e)),
            },
        }
    }

    fn restore_memory(&self, id: &str, dump: &Path) -> Result<String, RuntimeError> {
        let cmd =
            resume_cmd(id, Mode::Checkpoint, Some(dump)).ok_or_else(|| RuntimeError::Invalid {
                id: id.to_owned(),
                message: "no restore command".into(),
            })?;
        self.runner.run(&cmd).map_err(|e| cmd_err(id, e))?;
        Ok(cmd.to_string())
    }

    fn plan_copy(&self, req: &CopyRequest) -> Result<CopyPlan, RuntimeError> {
        OpenvzRuntime::plan_copy(self, req)
    }

    fn copy_config(
        &self,
        req: &CopyRequest,
        archived: Option<&str>,
    ) -> Result<CopiedConfig, RuntimeError> {
        OpenvzRuntime::copy_config(self, req, archived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vzctl_command_lines() {
        let q = Quiesced {
            mode: Mode::Checkpoint,
            dump: Some("/vz/dump/Dump.101".into()),
            note: None,
        };
        assert_eq!(
            quiesce_cmd("101", &q).unwrap().to_string(),
            "vzctl chkpnt 101 --dumpfile /vz/dump/Dump.101"
        );
        assert_eq!(
            resume_cmd("101", Mode::Checkpoint, q.dump.as_deref())
                .unwrap()
                .to_string(),
            "vzctl restore 101 --dumpfile /vz/dump/Dump.101"
        );
        assert_eq!(
            resume_cmd("101", Mode::Suspend, None).unwrap().to_string(),
            "vzctl resume 101"
        );
        assert_eq!(
            resume_cmd("101", Mode::Stop, None).unwrap().to_string(),
            "vzctl start 101"
        );
        assert!(resume_cmd("101", Mode::Snapshot, None).is_none());
    }
}
