//! The wire format of a btrfs send stream (btrfs-progs
//! `Documentation/dev/dev-send-stream.rst`, the kernel's `fs/btrfs/send.h`):
//! the header `btrfs-stream\0` and a little-endian `u32` version, then
//! commands, each a `u32` length of its attributes, a `u16` command, a
//! `u32` CRC-32C (seed 0, no final inversion) over the whole command with
//! that field zeroed, and its attributes as type-length-value items (`u16`
//! type, `u16` length). Version 2 sends a `DATA` attribute without a
//! length: it runs to the end of its command.

use super::StreamError;

/// The stream's magic, with its NUL.
const MAGIC: &[u8] = b"btrfs-stream\0";
/// Versions read: 1, 2 (encoded writes, fallocate, fileattr) and 3 (verity).
const VERSIONS: std::ops::RangeInclusive<u32> = 1..=3;
/// A command header: length, command, CRC.
const CMD_HEADER: usize = 10;
/// An attribute header: type, length.
const TLV_HEADER: usize = 4;

/// Command numbers (`enum btrfs_send_cmd`).
pub(crate) mod cmd {
    pub const SUBVOL: u16 = 1;
    pub const SNAPSHOT: u16 = 2;
    pub const MKFILE: u16 = 3;
    pub const MKDIR: u16 = 4;
    pub const MKNOD: u16 = 5;
    pub const MKFIFO: u16 = 6;
    pub const MKSOCK: u16 = 7;
    pub const SYMLINK: u16 = 8;
    pub const RENAME: u16 = 9;
    pub const LINK: u16 = 10;
    pub const UNLINK: u16 = 11;
    pub const RMDIR: u16 = 12;
    pub const SET_XATTR: u16 = 13;
    pub const REMOVE_XATTR: u16 = 14;
    pub const WRITE: u16 = 15;
    pub const CLONE: u16 = 16;
    pub const TRUNCATE: u16 = 17;
    pub const CHMOD: u16 = 18;
    pub const CHOWN: u16 = 19;
    pub const UTIMES: u16 = 20;
    pub const END: u16 = 21;
    pub const UPDATE_EXTENT: u16 = 22;
    pub const FALLOCATE: u16 = 23;
    pub const FILEATTR: u16 = 24;
    pub const ENCODED_WRITE: u16 = 25;
    pub const ENABLE_VERITY: u16 = 26;
}

/// Attribute numbers (`enum btrfs_send_attr`, the ones read here).
pub(crate) mod attr {
    pub const UUID: u16 = 1;
    pub const CTRANSID: u16 = 2;
    pub const SIZE: u16 = 4;
    pub const PATH: u16 = 15;
    pub const PATH_TO: u16 = 16;
    pub const PATH_LINK: u16 = 17;
    pub const FILE_OFFSET: u16 = 18;
    pub const DATA: u16 = 19;
    pub const CLONE_UUID: u16 = 20;
    pub const CLONE_CTRANSID: u16 = 21;
    pub const CLONE_LEN: u16 = 24;
    pub const UNENCODED_FILE_LEN: u16 = 27;
}

/// One command and its attributes, borrowed from the stream.
#[derive(Debug)]
pub(crate) struct Command<'a> {
    /// The command number.
    pub kind: u16,
    /// Where it starts in the stream (for messages).
    pub offset: usize,
    attrs: Vec<(u16, &'a [u8])>,
}

impl<'a> Command<'a> {
    /// The value of attribute `a`.
    pub(crate) fn get(&self, a: u16) -> Result<&'a [u8], StreamError> {
        self.attrs
            .iter()
            .find(|(t, _)| *t == a)
            .map(|(_, v)| *v)
            .ok_or(StreamError::MissingAttribute {
                command: self.kind,
                attribute: a,
                offset: self.offset,
            })
    }

    /// Attribute `a` as a little-endian `u64`.
    pub(crate) fn u64(&self, a: u16) -> Result<u64, StreamError> {
        let v = self.get(a)?;
        <[u8; 8]>::try_from(v)
            .map(u64::from_le_bytes)
            .map_err(|_| self.bad(a))
    }

    /// Attribute `a` as a UUID.
    pub(crate) fn uuid(&self, a: u16) -> Result<[u8; 16], StreamError> {
        <[u8; 16]>::try_from(self.get(a)?).map_err(|_| self.bad(a))
    }

    /// Attribute `a` as a path below the subvolume: relative, no `.` or
    /// `..`, no NUL; the empty path is the subvolume's root.
    pub(crate) fn path(&self, a: u16) -> Result<&'a [u8], StreamError> {
        let p = self.get(a)?;
        let bad = p.first() == Some(&b'/')
            || p.contains(&0)
            || p.split(|&b| b == b'/')
                .any(|c| c == b"." || c == b".." || (c.is_empty() && !p.is_empty()));
        if bad {
            return Err(self.bad(a));
        }
        Ok(p)
    }

    fn bad(&self, a: u16) -> StreamError {
        StreamError::BadAttribute {
            command: self.kind,
            attribute: a,
            offset: self.offset,
        }
    }
}

/// The version and the commands of `stream`, every CRC checked; the
/// stream must end with its `END` command and nothing after it.
pub(crate) fn commands(stream: &[u8]) -> Result<(u32, Vec<Command<'_>>), StreamError> {
    let rest = stream.strip_prefix(MAGIC).ok_or(StreamError::NotAStream)?;
    let version = rest
        .get(..4)
        .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        .ok_or(StreamError::Truncated {
            offset: MAGIC.len(),
        })?;
    if !VERSIONS.contains(&version) {
        return Err(StreamError::Version(version));
    }
    let mut at = MAGIC.len() + 4;
    let mut out = Vec::new();
    while at < stream.len() {
        let c = command(stream, at, version)?;
        at += CMD_HEADER + c.1;
        let end = c.0.kind == cmd::END;
        out.push(c.0);
        if end {
            if at != stream.len() {
                return Err(StreamError::AfterEnd { offset: at });
            }
            return Ok((version, out));
        }
    }
    Err(StreamError::NoEnd)
}

/// The command at `at` and the length of its attributes.
fn command(stream: &[u8], at: usize, version: u32) -> Result<(Command<'_>, usize), StreamError> {
    let truncated = StreamError::Truncated { offset: at };
    let h = stream.get(at..at + CMD_HEADER).ok_or(truncated.clone())?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let kind = u16::from_le_bytes([h[4], h[5]]);
    let crc = u32::from_le_bytes([h[6], h[7], h[8], h[9]]);
    let body = stream
        .get(at + CMD_HEADER..at + CMD_HEADER + len)
        .ok_or(truncated)?;
    let mut whole = Vec::with_capacity(CMD_HEADER + len);
    whole.extend_from_slice(&h[..6]);
    whole.extend_from_slice(&[0; 4]);
    whole.extend_from_slice(body);
    if crc32c(&whole) != crc {
        return Err(StreamError::Crc {
            offset: at,
            command: kind,
        });
    }
    let attrs = attributes(body, at, version)?;
    Ok((
        Command {
            kind,
            offset: at,
            attrs,
        },
        len,
    ))
}

/// The attributes of one command's body.
fn attributes(body: &[u8], at: usize, version: u32) -> Result<Vec<(u16, &[u8])>, StreamError> {
    let mut attrs = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let h = body.get(i..i + TLV_HEADER).ok_or(StreamError::Truncated {
            offset: at + CMD_HEADER + i,
        })?;
        let t = u16::from_le_bytes([h[0], h[1]]);
        if version >= 2 && t == attr::DATA {
            // v2: no length; the data is the rest of the command.
            attrs.push((t, &body[i + 2..]));
            break;
        }
        let n = u16::from_le_bytes([h[2], h[3]]) as usize;
        let v = body
            .get(i + TLV_HEADER..i + TLV_HEADER + n)
            .ok_or(StreamError::Truncated {
                offset: at + CMD_HEADER + i,
            })?;
        attrs.push((t, v));
        i += TLV_HEADER + n;
    }
    Ok(attrs)
}

/// CRC-32C as btrfs computes it for send streams: seed 0, no inversion.
pub(super) fn crc32c(data: &[u8]) -> u32 {
    use std::sync::OnceLock;
    static PARAMS: OnceLock<crc_fast::CrcParams> = OnceLock::new();
    let params = PARAMS.get_or_init(|| {
        // Castagnoli's polynomial, reflected, init 0, xorout 0; `check` is
        // the CRC of "123456789" with these parameters.
        crc_fast::CrcParams::new(
            "CRC-32C/btrfs-send",
            32,
            0x1EDC_6F41,
            0,
            true,
            0,
            0x58E3_FA20,
        )
    });
    crc_fast::checksum_with_params(*params, data) as u32
}

#[cfg(test)]
mod tests {
    use super::super::tests::{encode, stream};
    use super::*;

    #[test]
    fn the_crc_is_castagnolis_without_inversion() {
        // The reflected CRC-32C of "123456789" with init 0 and no final
        // xor (standard CRC-32C, init and xorout ~0, gives 0xe3069283).
        assert_eq!(crc32c(b"123456789"), 0x58E3_FA20);
    }

    #[test]
    fn commands_are_read_with_their_attributes() {
        let s = stream(&[
            encode(
                cmd::TRUNCATE,
                &[(attr::PATH, b"a/b"), (attr::SIZE, &7u64.to_le_bytes())],
            ),
            encode(cmd::END, &[]),
        ]);
        let (v, cmds) = commands(&s).unwrap();
        assert_eq!(v, 1);
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].path(attr::PATH).unwrap(), b"a/b");
        assert_eq!(cmds[0].u64(attr::SIZE).unwrap(), 7);
    }

    #[test]
    fn damage_is_an_error_never_a_shorter_list() {
        let good = stream(&[
            encode(
                cmd::TRUNCATE,
                &[(attr::PATH, b"f"), (attr::SIZE, &7u64.to_le_bytes())],
            ),
            encode(cmd::END, &[]),
        ]);
        assert!(commands(&good).is_ok());
        // Every truncation, every flipped bit.
        for n in 0..good.len() {
            assert!(commands(&good[..n]).is_err(), "cut at {n}");
        }
        for i in MAGIC.len() + 4..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(commands(&bad).is_err(), "flipped byte {i}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(
            commands(&extra),
            Err(StreamError::AfterEnd { .. })
        ));
        let mut v9 = good.clone();
        v9[MAGIC.len()] = 9;
        assert!(matches!(commands(&v9), Err(StreamError::Version(9))));
    }

    #[test]
    fn paths_that_leave_the_subvolume_are_refused() {
        for p in [
            &b"/etc/passwd"[..],
            b"../x",
            b"a/../../x",
            b"a//b",
            b"a/",
            b"./a",
            b"a\0b",
        ] {
            let s = stream(&[
                encode(cmd::UNLINK, &[(attr::PATH, p)]),
                encode(cmd::END, &[]),
            ]);
            let (_, cmds) = commands(&s).unwrap();
            assert!(cmds[0].path(attr::PATH).is_err(), "{p:?}");
        }
    }
}
