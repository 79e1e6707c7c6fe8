//! Names from a container's tree or an archive, shown to a person: on one
//! line, with no control character reaching a terminal, and two names
//! never shown alike (a hostile name cannot pass for another, or for a
//! line of the report).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A name shown to a person: printable UTF-8 as it is; a backslash, a
/// control character or a byte that is not UTF-8 as a C escape (`\\`,
/// `\n`, `\x1b`, `\xff`), so every name shows on one line and two names
/// never show the same.
pub fn escape(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    for byte in c.to_string().bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// [`escape`] of a path's bytes.
pub fn escape_path(p: &Path) -> String {
    escape(p.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_show_on_one_line_and_never_alike() {
        assert_eq!(escape(b"plain/\xc3\xa9t\xc3\xa9"), "plain/été");
        assert_eq!(escape(b"a\nb"), "a\\nb");
        assert_eq!(escape(b"bad-\xff-name"), "bad-\\xff-name");
        assert_eq!(escape(b"a\\nb"), "a\\\\nb");
        assert_eq!(escape(b"\x1b[31m"), "\\x1b[31m");
    }

    #[test]
    fn a_path_is_escaped_as_its_bytes() {
        use std::ffi::OsStr;
        let p = Path::new(OsStr::from_bytes(b"dir/\x1b\n-\xff"));
        assert_eq!(escape_path(p), "dir/\\x1b\\n-\\xff");
    }
}
