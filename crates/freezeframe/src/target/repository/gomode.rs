//! File modes as restic stores them: Go's `os.FileMode`
//! (<https://pkg.go.dev/io/fs#FileMode>), permission bits plus type and
//! special bits of its own, the same for every restic-format tool.

use crate::archive::walk::Kind;

const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_DEVICE: u32 = 1 << 26;
const GO_FIFO: u32 = 1 << 25;
const GO_SOCKET: u32 = 1 << 24;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_CHARDEV: u32 = 1 << 21;
const GO_STICKY: u32 = 1 << 20;

/// The Go mode of an entry of `kind` with POSIX permission bits `mode`
/// (`& 0o7777`). Character devices carry both the device and the
/// char-device bit, as Go sets them.
pub fn to_go(kind: Kind, mode: u32) -> u32 {
    let mut go = mode & 0o777;
    go |= match kind {
        Kind::Dir => GO_DIR,
        Kind::Symlink => GO_SYMLINK,
        Kind::Block => GO_DEVICE,
        Kind::Char => GO_DEVICE | GO_CHARDEV,
        Kind::Fifo => GO_FIFO,
        Kind::Socket => GO_SOCKET,
        Kind::File => 0,
    };
    if mode & 0o4000 != 0 {
        go |= GO_SETUID;
    }
    if mode & 0o2000 != 0 {
        go |= GO_SETGID;
    }
    if mode & 0o1000 != 0 {
        go |= GO_STICKY;
    }
    go
}

/// POSIX permission bits (with setuid, setgid, sticky) of a Go mode.
pub fn posix_mode(go: u32) -> u32 {
    let mut m = go & 0o777;
    if go & GO_SETUID != 0 {
        m |= 0o4000;
    }
    if go & GO_SETGID != 0 {
        m |= 0o2000;
    }
    if go & GO_STICKY != 0 {
        m |= 0o1000;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_with_their_special_bits() {
        assert_eq!(to_go(Kind::File, 0o644), 0o644);
        assert_eq!(to_go(Kind::Dir, 0o755), GO_DIR | 0o755);
        assert_eq!(to_go(Kind::Char, 0o600), GO_DEVICE | GO_CHARDEV | 0o600);
        for m in [0o4755, 0o2775, 0o1777, 0o7000, 0o640] {
            assert_eq!(posix_mode(to_go(Kind::Dir, m)), m, "{m:o}");
        }
        assert_eq!(posix_mode((1 << 31) | 0o700), 0o700);
    }
}
