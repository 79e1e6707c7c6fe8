//! The composition root: the real runtimes, providers and clock of this host.

use std::sync::Arc;

use freezeframe::config::Config;
use freezeframe::engine::Toolbox;
use freezeframe::runtime::CgroupRuntime;
use freezeframe::snapshot::BtrfsProvider;
use freezeframe::sys::mountinfo::{cgroup_mounts, read_self, CgroupMounts};
use freezeframe::sys::{host_name, SystemClock, SystemRunner};

/// The toolbox for this host and config.
pub fn toolbox(config: &Config) -> Toolbox {
    let mut mounts: CgroupMounts = read_self().map(|m| cgroup_mounts(&m)).unwrap_or_default();
    if let Some(p) = &config.cgroup.v2_root {
        mounts.v2 = Some(p.clone());
    }
    if let Some(p) = &config.cgroup.v1_freezer_root {
        mounts.v1_freezer = Some(p.clone());
    }
    Toolbox {
        runtimes: vec![Arc::new(CgroupRuntime::new(mounts))],
        providers: vec![Arc::new(BtrfsProvider::new(Arc::new(SystemRunner)))],
        clock: Arc::new(SystemClock::new()),
        host: host_name(),
    }
}
