//! The composition root: the real runtimes, providers and clock of this host.

use std::path::PathBuf;
use std::sync::Arc;

use freezeframe::{
    host_cgroup_mounts, host_name, BtrfsProvider, CgroupMounts, CgroupRuntime, Config, LvmProvider,
    LxcRuntime, OpenvzRuntime, ShellHooks, SystemClock, SystemRunner, Target, Toolbox,
};

/// The configured target, opened (a repository's password is read now).
pub fn target(config: &Config) -> anyhow::Result<Arc<dyn Target>> {
    Ok(freezeframe::open(&config.target, &SystemRunner)?)
}

/// Where this host's runtimes live: all a toolbox needs besides the config's
/// hooks, and all the guardian is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The cgroup mounts (found in mountinfo unless the config names them).
    pub cgroups: CgroupMounts,
    /// OpenVZ's container config folder.
    pub openvz_conf_dir: PathBuf,
    /// LXC's container folder.
    pub lxcpath: PathBuf,
}

impl HostPaths {
    /// The paths `config` runs with on this host.
    pub fn of(config: &Config) -> Self {
        let mut cgroups: CgroupMounts = host_cgroup_mounts();
        if let Some(p) = &config.cgroup.v2_root {
            cgroups.v2 = Some(p.clone());
        }
        if let Some(p) = &config.cgroup.v1_freezer_root {
            cgroups.v1_freezer = Some(p.clone());
        }
        Self {
            cgroups,
            openvz_conf_dir: config.openvz.conf_dir.clone(),
            lxcpath: config.lxc.lxcpath.clone(),
        }
    }
}

/// The toolbox for this host and config (no cancellation, faults or
/// guardian: the commands that need them add them).
pub fn toolbox(config: &Config) -> Toolbox {
    let mut tools = host_toolbox(&HostPaths::of(config));
    tools.hooks = Arc::new(ShellHooks::new(
        Arc::new(SystemRunner),
        config.hooks.commands.clone(),
        config.hooks.timeout.0,
    ));
    tools
}

/// The runtimes and providers of this host, without hooks.
pub fn host_toolbox(paths: &HostPaths) -> Toolbox {
    let runner = Arc::new(SystemRunner);
    let cgroups = CgroupRuntime::new(paths.cgroups.clone());
    Toolbox::new(
        vec![
            Arc::new(cgroups.clone()),
            Arc::new(OpenvzRuntime::new(
                runner.clone(),
                paths.openvz_conf_dir.clone(),
                cgroups,
            )),
            Arc::new(LxcRuntime::new(runner.clone(), paths.lxcpath.clone())),
        ],
        vec![
            Arc::new(BtrfsProvider::new(runner.clone())),
            Arc::new(LvmProvider::new(runner.clone(), false)),
            Arc::new(LvmProvider::new(runner, true)),
        ],
        Arc::new(SystemClock::new()),
        host_name(),
    )
}
