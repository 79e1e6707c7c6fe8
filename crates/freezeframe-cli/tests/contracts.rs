//! The contract suites (`freezeframe::contract`) run against the real
//! implementations on this host: the cgroup runtime on cgroup v2 and on the
//! v1 freezer, with a real process in the cgroup, and btrfs snapshots on a
//! loop-backed volume. OpenVZ runs its suite in `openvz.rs` (stand-ins),
//! LXC in `lxc.rs`, LVM classic and thin in `lvm.rs` (the guest).

#![allow(clippy::unwrap_used)]

mod common;

use common::{privileged, CgVersion, Ct, Env, LoopBtrfs, TestCgroup};
use freezeframe::contract::{runtime_contract, snapshot_contract, RuntimeSubject, SnapshotSubject};
use freezeframe::{host_cgroup_mounts, BtrfsProvider, CgroupRuntime, Mode, SystemRunner};

fn cgroup_contract(version: CgVersion) {
    let vol = LoopBtrfs::new("256M");
    let private = vol.volume().join("ct");
    std::fs::create_dir(&private).unwrap();
    let mut cg = TestCgroup::new(version);
    cg.spawn(&["sleep", "600"]);
    let env = Env::new(
        &vol.volume(),
        &[Ct {
            id: "ct".into(),
            cgroup: cg.rel.clone(),
            private,
            config: None,
        }],
        "",
    );
    let config = freezeframe::load(&env.config).unwrap();
    let runtime = CgroupRuntime::new(host_cgroup_mounts());
    runtime_contract(&RuntimeSubject {
        runtime: &runtime,
        spec: config.containers[0].clone(),
        mode: Mode::Snapshot,
        at_rest: &|| cg.is_frozen(),
    });
}

#[test]
fn the_cgroup_runtime_keeps_the_contract_on_cgroup_v2() {
    if !privileged() {
        return;
    }
    cgroup_contract(CgVersion::V2);
}

#[test]
fn the_cgroup_runtime_keeps_the_contract_on_the_v1_freezer() {
    if !privileged()
        || !common::require(
            "cgroup v1 freezer",
            common::cgroup_v1_freezer_root().is_some(),
        )
    {
        return;
    }
    cgroup_contract(CgVersion::V1);
}

#[test]
fn btrfs_snapshots_keep_the_contract() {
    if !privileged() {
        return;
    }
    let vol = LoopBtrfs::new("256M");
    let env = Env::new(&vol.volume(), &[], "");
    let config = freezeframe::load(&env.config).unwrap();
    let provider = BtrfsProvider::new(std::sync::Arc::new(SystemRunner));
    snapshot_contract(&SnapshotSubject {
        provider: &provider,
        volume: config.volumes[0].clone(),
        state_dir: &env.state(),
    });
    assert!(
        vol.snapshot_folder().is_empty(),
        "{:?}",
        vol.snapshot_folder()
    );
}
