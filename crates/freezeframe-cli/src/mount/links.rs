//! Symlinks that stay inside the mount. The kernel follows a symlink a
//! FUSE file system returns like any other: an absolute target, or one
//! that climbs above the backup's root, would lead out of the backup into
//! the host (`cat etc/alternatives/editor` showing the host's editor). So
//! the mount shows each target as the container would resolve it — as if
//! the backup's root were `/` — expressed relative to the link's folder.

/// The target to show for a link in folder `dir` (components below the
/// backup's root) stored as `target`: unchanged when it can only stay
/// inside (relative, its `..` all leading and no more of them than `dir`
/// is deep), else the lexically resolved path, relative.
pub fn contained(dir: &[Vec<u8>], target: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = target
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let absolute = target.first() == Some(&b'/');
    let leading = parts.iter().take_while(|c| **c == b"..").count();
    let later_up = parts[leading..].iter().any(|c| *c == b"..");
    if !absolute && !later_up && leading <= dir.len() {
        return target.to_vec();
    }
    let mut at: Vec<&[u8]> = if absolute {
        Vec::new()
    } else {
        dir.iter().map(Vec::as_slice).collect()
    };
    for c in parts {
        if c == b".." {
            at.pop();
        } else {
            at.push(c);
        }
    }
    let mut out: Vec<&[u8]> = vec![b".."; dir.len()];
    out.extend(at);
    if out.is_empty() {
        return b".".to_vec();
    }
    out.join(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str) -> Vec<Vec<u8>> {
        p.split('/')
            .filter(|c| !c.is_empty())
            .map(|c| c.as_bytes().to_vec())
            .collect()
    }

    fn shown(d: &str, t: &str) -> String {
        String::from_utf8(contained(&dir(d), t.as_bytes())).unwrap()
    }

    #[test]
    fn targets_that_stay_inside_are_kept() {
        assert_eq!(shown("etc", "passwd"), "passwd");
        assert_eq!(shown("usr/bin", "../lib/x"), "../lib/x");
        assert_eq!(shown("a/b", "../../c"), "../../c");
        assert_eq!(shown("", "./x/y"), "./x/y");
    }

    #[test]
    fn absolute_targets_resolve_against_the_backup_root() {
        assert_eq!(
            shown("etc/alternatives", "/usr/bin/vim"),
            "../../usr/bin/vim"
        );
        assert_eq!(shown("", "/etc/passwd"), "etc/passwd");
        assert_eq!(shown("", "/"), ".");
        assert_eq!(shown("a", "/"), "..");
    }

    #[test]
    fn climbing_above_the_root_stops_at_it() {
        assert_eq!(shown("a", "../../../etc/shadow"), "../etc/shadow");
        assert_eq!(shown("", "../x"), "x");
        // `..` after a name: the name may be a symlink, so no kernel walk
        // of the stored text is trusted.
        assert_eq!(shown("", "sub/../../x"), "x");
        assert_eq!(shown("d", "a/../x"), "../d/x");
    }

    #[test]
    fn a_rewritten_target_never_climbs_above_the_root() {
        for (d, t) in [
            ("a/b/c", "/../../../../x"),
            ("a", "b/../../../../y"),
            ("", "//x/../.."),
        ] {
            let depth = dir(d).len();
            let out = contained(&dir(d), t.as_bytes());
            let ups = out
                .split(|&c| c == b'/')
                .take_while(|c| *c == b"..")
                .count();
            assert!(ups <= depth, "{d} {t} -> {}", String::from_utf8_lossy(&out));
            let rest = out.split(|&c| c == b'/').skip(ups);
            assert!(rest.into_iter().all(|c| c != b".."));
        }
    }
}
