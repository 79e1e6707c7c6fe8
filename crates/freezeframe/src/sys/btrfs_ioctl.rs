//! The one ioctl freezeframe makes itself, and so the crate's only
//! `unsafe`: `BTRFS_IOC_SNAP_CREATE_V2`, a read-only snapshot of a
//! subvolume, made by this process rather than by `btrfs subvolume
//! snapshot`.
//!
//! Why not the command: a child process outlives a backup killed with
//! SIGKILL. A `btrfs` still running when its parent dies finishes the
//! snapshot *after* the guardian and `recover` looked for it, and the
//! snapshot is leaked. A syscall of our own is finished (or not begun)
//! when the process is gone. It also spares a fork and exec inside the
//! freeze window. The layout is the kernel's
//! `struct btrfs_ioctl_vol_args_v2` (`include/uapi/linux/btrfs.h`).

#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{open, Mode, OFlags};
use rustix::ioctl::{ioctl, opcode, Setter};

/// `BTRFS_IOCTL_MAGIC`.
const MAGIC: u8 = 0x94;
/// `BTRFS_SUBVOL_NAME_MAX`.
const NAME_MAX: usize = 4039;
/// `BTRFS_SUBVOL_RDONLY`.
const SUBVOL_RDONLY: u64 = 1 << 1;

/// `struct btrfs_ioctl_vol_args_v2`: the source's fd, flags, and the new
/// subvolume's name (the unions are used by their `unused` and `name` arms).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; NAME_MAX + 1],
}

const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);

/// `BTRFS_IOC_SNAP_CREATE_V2 = _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)`.
const SNAP_CREATE_V2: rustix::ioctl::Opcode = opcode::write::<VolArgsV2>(MAGIC, 23);

/// Makes `dest_dir/name` a read-only snapshot of the subvolume `source`.
/// `name` is one plain file name.
pub fn snapshot_readonly(source: &Path, dest_dir: &Path, name: &OsStr) -> io::Result<()> {
    let n = name.as_bytes();
    if n.is_empty()
        || n.len() > NAME_MAX
        || n.contains(&b'/')
        || n.contains(&0)
        || n == b"."
        || n == b".."
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a subvolume name"),
        ));
    }
    let dir = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let src = open(source, dir, Mode::empty())?;
    let dst = open(dest_dir, dir | OFlags::NOFOLLOW, Mode::empty())?;
    let mut args = VolArgsV2 {
        fd: i64::from(src.as_raw_fd()),
        transid: 0,
        flags: SUBVOL_RDONLY,
        unused: [0; 4],
        name: [0; NAME_MAX + 1],
    };
    args.name[..n.len()].copy_from_slice(n);
    // SAFETY: SNAP_CREATE_V2 is the kernel's opcode for exactly this
    // argument type: `VolArgsV2` has the layout of
    // `struct btrfs_ioctl_vol_args_v2` (size checked above), `name` is
    // NUL-terminated (at most NAME_MAX bytes copied into NAME_MAX + 1
    // zeroed ones), and `src` stays open for the call.
    unsafe { ioctl(&dst, Setter::<SNAP_CREATE_V2, VolArgsV2>::new(args)) }?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_one_plain_name_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            let e = snapshot_readonly(Path::new("/"), Path::new("/"), OsStr::new(bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let long = "x".repeat(NAME_MAX + 1);
        assert!(snapshot_readonly(Path::new("/"), Path::new("/"), OsStr::new(&long)).is_err());
    }

    #[test]
    fn not_btrfs_is_an_error_not_a_crash() {
        let d = tempfile::tempdir().unwrap();
        // tmpfs or ext4: the ioctl is not theirs.
        let e = snapshot_readonly(d.path(), d.path(), OsStr::new("snap")).unwrap_err();
        assert!(e.raw_os_error().is_some(), "{e}");
        assert!(!d.path().join("snap").exists());
    }
}
