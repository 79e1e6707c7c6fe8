//! User and group names from the container's own `etc/passwd` and
//! `etc/group` (the host's names would be wrong for a container).

use std::collections::HashMap;
use std::path::Path;

/// uid → name and gid → name, as the container sees them.
#[derive(Debug, Default, Clone)]
pub struct Owners {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

fn parse(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _pw = f.next()?;
            let id = f.next()?.parse().ok()?;
            (!name.is_empty() && name.len() <= 31).then(|| (id, name.to_owned()))
        })
        .collect()
}

fn read_regular(p: &Path) -> Option<String> {
    let m = std::fs::symlink_metadata(p).ok()?;
    if !m.is_file() || m.len() > 16 << 20 {
        return None;
    }
    std::fs::read_to_string(p).ok()
}

impl Owners {
    /// Reads `<root>/etc/passwd` and `<root>/etc/group` if they are regular
    /// files; missing ones give no names.
    pub fn load(root: &Path) -> Self {
        Self {
            users: read_regular(&root.join("etc/passwd"))
                .map(|t| parse(&t))
                .unwrap_or_default(),
            groups: read_regular(&root.join("etc/group"))
                .map(|t| parse(&t))
                .unwrap_or_default(),
        }
    }

    /// The user name of `uid`.
    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    /// The group name of `gid`.
    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_lines() {
        let m = parse(
            "root:x:0:0:root:/root:/bin/sh\n# c\nwww-data:x:33:33::/var/www:/bin/false\nbad\n",
        );
        assert_eq!(m.get(&0).map(String::as_str), Some("root"));
        assert_eq!(m.get(&33).map(String::as_str), Some("www-data"));
        assert_eq!(m.len(), 2);
    }
}
