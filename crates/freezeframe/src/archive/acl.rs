//! POSIX ACLs: the kernel's binary xattr form (`system.posix_acl_access`)
//! converted to and from the text GNU tar stores in `SCHILY.acl.*`, with
//! numeric ids (names would be the host's, not the container's).

const ACL_VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const NO_ID: u32 = u32::MAX;

/// The xattr holding the access ACL.
pub const XATTR_ACCESS: &str = "system.posix_acl_access";
/// The xattr holding a directory's default ACL.
pub const XATTR_DEFAULT: &str = "system.posix_acl_default";

/// Binary ACL xattr → `user::rw-\nuser:1000:r--\n…` text, or `None` if the
/// value is not a well-formed version-2 ACL.
pub fn to_text(bin: &[u8]) -> Option<String> {
    if bin.len() < 4 || !(bin.len() - 4).is_multiple_of(8) {
        return None;
    }
    if u32::from_le_bytes(bin[..4].try_into().ok()?) != ACL_VERSION {
        return None;
    }
    let mut out = String::new();
    for e in bin[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let (name, qualified) = match tag {
            USER_OBJ => ("user", false),
            USER => ("user", true),
            GROUP_OBJ => ("group", false),
            GROUP => ("group", true),
            MASK => ("mask", false),
            OTHER => ("other", false),
            _ => return None,
        };
        let q = if qualified {
            id.to_string()
        } else {
            String::new()
        };
        let p = |bit: u16, c: char| if perm & bit != 0 { c } else { '-' };
        out.push_str(&format!(
            "{name}:{q}:{}{}{}\n",
            p(4, 'r'),
            p(2, 'w'),
            p(1, 'x')
        ));
    }
    Some(out)
}

/// ACL text (entries separated by newlines or commas, numeric ids) →
/// binary xattr value.
pub fn from_text(text: &str) -> Result<Vec<u8>, String> {
    let mut out = ACL_VERSION.to_le_bytes().to_vec();
    for entry in text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let parts: Vec<&str> = entry.split(':').collect();
        let [tag, q, perms] = parts[..] else {
            return Err(format!("ACL entry `{entry}` is not `tag:qualifier:perms`"));
        };
        let qualified = !q.is_empty();
        let tag = match (tag, qualified) {
            ("user" | "u", false) => USER_OBJ,
            ("user" | "u", true) => USER,
            ("group" | "g", false) => GROUP_OBJ,
            ("group" | "g", true) => GROUP,
            ("mask" | "m", false) => MASK,
            ("other" | "o", false) => OTHER,
            _ => return Err(format!("ACL entry `{entry}` has an unknown tag")),
        };
        let id = if qualified {
            q.parse::<u32>()
                .map_err(|_| format!("ACL entry `{entry}`: `{q}` is not a numeric id"))?
        } else {
            NO_ID
        };
        let mut perm = 0u16;
        for c in perms.chars() {
            perm |= match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                '-' => 0,
                _ => return Err(format!("ACL entry `{entry}` has bad permissions")),
            };
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

/// The binary ACL `bin` with the id of every named user and group entry
/// replaced by `f(is_group, id)`; `None` if it is not a well-formed
/// version-2 ACL.
pub fn map_ids(bin: &[u8], f: impl Fn(bool, u32) -> u32) -> Option<Vec<u8>> {
    to_text(bin)?;
    let mut out = bin.to_vec();
    for e in out[4..].chunks_exact_mut(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        if tag == USER || tag == GROUP {
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            e[4..8].copy_from_slice(&f(tag == GROUP, id).to_le_bytes());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `getfattr -e hex -n system.posix_acl_access` of a file with
    // `setfacl -m u:1000:rw,g:50:r` (captured on this host).
    const CAPTURED: &str = "0200000001000600ffffffff02000600e803000004000400ffffffff080004003200000010000600ffffffff20000400ffffffff";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn converts_captured_acl_both_ways() {
        let bin = unhex(CAPTURED);
        let text = to_text(&bin).unwrap();
        assert_eq!(
            text,
            "user::rw-\nuser:1000:rw-\ngroup::r--\ngroup:50:r--\nmask::rw-\nother::r--\n"
        );
        assert_eq!(from_text(&text).unwrap(), bin);
        assert_eq!(from_text(&text.replace('\n', ",")).unwrap(), bin);
    }

    #[test]
    fn maps_named_ids_only() {
        let bin = unhex(CAPTURED);
        let shifted = map_ids(&bin, |group, id| id + if group { 2000 } else { 1000 }).unwrap();
        assert_eq!(
            to_text(&shifted).unwrap(),
            "user::rw-\nuser:2000:rw-\ngroup::r--\ngroup:2050:r--\nmask::rw-\nother::r--\n"
        );
        assert!(map_ids(b"\x01\x00\x00\x00", |_, id| id).is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(to_text(b"\x01\x00\x00\x00").is_none());
        assert!(to_text(&[2, 0, 0, 0, 1]).is_none());
        assert!(from_text("user:bob:rw-").is_err());
        assert!(from_text("weird::rw-").is_err());
    }
}
