//! The LVM commands freezeframe runs, built as data (tested in `tests.rs`),
//! and the arithmetic of a classic snapshot's size.

use super::report::{LV_FIELDS, VG_FIELDS};
use super::{MIB, TAG};
use crate::config::SnapshotSize;
use crate::sys::{Cmd, Owner};

/// `lvs` as JSON, of `target` (`vg`, `vg/lv`, or all), optionally only
/// freezeframe-tagged LVs.
pub fn lvs_cmd(target: Option<&str>, tagged_only: bool) -> Cmd {
    let mut c = json_report("lvs", LV_FIELDS);
    if tagged_only {
        c = c.arg("-S").arg(format!("lv_tags={TAG}"));
    }
    if let Some(t) = target {
        c = c.arg(t);
    }
    c
}

/// `lvs -a` as JSON of volume group `vg`: hidden LVs too (a thin pool's
/// `[pool_tmeta]`).
pub fn lvs_all_cmd(vg: &str) -> Cmd {
    json_report("lvs", LV_FIELDS).arg("-a").arg(vg)
}

/// `vgs` as JSON.
pub fn vgs_cmd(vg: &str) -> Cmd {
    json_report("vgs", VG_FIELDS).arg(vg)
}

/// An LVM report command (`lvs`, `vgs`) as JSON, sizes in bytes without a
/// suffix, of `fields`.
fn json_report(program: &str, fields: &str) -> Cmd {
    Cmd::new(program)
        .arg("--reportformat")
        .arg("json")
        .arg("--units")
        .arg("b")
        .arg("--nosuffix")
        .arg("-o")
        .arg(fields)
}

/// `lvcreate` of a snapshot of `origin` (`vg/lv`) tagged [`TAG`] and with
/// its owner; `size_mib` for a classic snapshot, none for a thin one.
pub fn create_cmd(origin: &str, name: &str, size_mib: Option<u64>, owner: &Owner) -> Cmd {
    let mut c = Cmd::new("lvcreate").arg("-s");
    if let Some(m) = size_mib {
        c = c.arg("-L").arg(format!("{m}m"));
    }
    c = c
        .arg("-n")
        .arg(name)
        .arg("--addtag")
        .arg(TAG)
        .arg("--addtag")
        .arg(owner.to_tag());
    if let Some(t) = owner.state_tag() {
        c = c.arg("--addtag").arg(t);
    }
    c.arg(origin)
}

/// Mount options for a read-only snapshot of a file system still mounted
/// from its origin.
pub fn mount_options(fs_type: &str) -> &'static str {
    // nosuid, nodev, noexec: a container's tree is not the host's to run
    // or to open devices from, and a kept base stays mounted between runs.
    match fs_type {
        "ext4" | "ext3" | "ext2" => "ro,nosuid,nodev,noexec,noload",
        "xfs" => "ro,nosuid,nodev,noexec,norecovery,nouuid",
        _ => "ro,nosuid,nodev,noexec",
    }
}

/// Size of a classic snapshot of `origin` bytes, in MiB rounded up to whole
/// extents of `extent` bytes.
pub fn snapshot_mib(size: SnapshotSize, origin: u64, extent: u64) -> u64 {
    let b = size.bytes_for(origin);
    let extent = extent.max(MIB);
    b.div_ceil(extent) * extent / MIB
}
