//! The composition root: the real runtimes, providers and clock of this host.

use std::sync::Arc;

use freezeframe::config::Config;
use freezeframe::engine::Toolbox;
use freezeframe::runtime::{CgroupRuntime, LxcRuntime, OpenvzRuntime};
use freezeframe::snapshot::{BtrfsProvider, LvmProvider};
use freezeframe::sys::mountinfo::{cgroup_mounts, read_self, CgroupMounts};
use freezeframe::sys::{host_name, ShellHooks, SystemClock, SystemRunner};
use freezeframe::target::Target;

/// The configured target, opened (a repository's password is read now).
pub fn target(config: &Config) -> anyhow::Result<Arc<dyn Target>> {
    Ok(freezeframe::target::open(&config.target, &SystemRunner)?)
}

/// The toolbox for this host and config (no cancellation, faults or
/// guardian: the commands that need them add them).
pub fn toolbox(config: &Config) -> Toolbox {
    let mut mounts: CgroupMounts = read_self().map(|m| cgroup_mounts(&m)).unwrap_or_default();
    if let Some(p) = &config.cgroup.v2_root {
        mounts.v2 = Some(p.clone());
    }
    if let Some(p) = &config.cgroup.v1_freezer_root {
        mounts.v1_freezer = Some(p.clone());
    }
    let runner = Arc::new(SystemRunner);
    let cgroups = CgroupRuntime::new(mounts);
    let mut tools = Toolbox::new(
        vec![
            Arc::new(cgroups.clone()),
            Arc::new(OpenvzRuntime::new(
                runner.clone(),
                config.openvz.conf_dir.clone(),
                cgroups,
            )),
            Arc::new(LxcRuntime::new(runner, config.lxc.lxcpath.clone())),
        ],
        vec![
            Arc::new(BtrfsProvider::new(Arc::new(SystemRunner))),
            Arc::new(LvmProvider::new(Arc::new(SystemRunner), false)),
            Arc::new(LvmProvider::new(Arc::new(SystemRunner), true)),
        ],
        Arc::new(SystemClock::new()),
        host_name(),
    );
    tools.hooks = Arc::new(ShellHooks::new(
        config.hooks.commands.clone(),
        config.hooks.timeout.0,
    ));
    tools
}
