//! `freezeframe mount`: every backup of the target as a read-only FUSE
//! file system (`/<container>/<backup>/...`). `tree.rs` holds the inodes,
//! `fs.rs` answers the kernel, `links.rs` keeps symlinks inside.

mod fs;
mod links;
mod tree;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use freezeframe::{Cancel, Target};
use fuser::{Config, MountOption, SessionACL};

/// How the mount is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct MountOptions {
    /// Let every user in (as the backup's owners and modes allow).
    pub allow_other: bool,
}

/// Threads answering the kernel (a tar archive being indexed, or a slow
/// object store, holds up only its own requests).
const THREADS: usize = 2;

/// Mounts every backup of `target` at `mount_point` (canonical) and
/// serves it until it is unmounted (`umount`, `freezeframe umount`) or
/// `cancel` is set (then it unmounts itself). `ready` is called once the
/// mount is in place.
pub fn serve(
    target: Arc<dyn Target>,
    mount_point: &Path,
    opts: MountOptions,
    cancel: &Cancel,
    ready: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let backups = target.backups()?;
    let opener = {
        let target = target.clone();
        Box::new(move |b: &freezeframe::Backup| {
            target
                .view(b)
                .map_err(|e| format!("{} {}: {e}", b.container, b.id))
        })
    };
    let (tree, left_out) = tree::Tree::new(backups, opener);
    for c in left_out {
        tracing::warn!(
            "container {:?}: its id cannot be a folder name; not shown",
            c
        );
    }
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::DefaultPermissions,
        MountOption::FSName("freezeframe".into()),
        MountOption::Subtype("freezeframe".into()),
    ];
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(THREADS);
    let session =
        fuser::spawn_mount(fs::BackupFs::new(tree), mount_point, &config).map_err(|e| {
            anyhow::anyhow!(
                "cannot mount at {}: {e} (is it an empty folder, and is /dev/fuse there?)",
                mount_point.display()
            )
        })?;
    if let Err(e) = ready() {
        session.umount_and_join()?;
        return Err(e);
    }
    loop {
        if session.guard.is_finished() {
            // Unmounted from outside.
            return session
                .join()
                .map_err(|e| anyhow::anyhow!("serving the mount: {e}"));
        }
        if cancel.signal().is_some() {
            return session
                .umount_and_join()
                .map_err(|e| anyhow::anyhow!("unmounting {}: {e}", mount_point.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
