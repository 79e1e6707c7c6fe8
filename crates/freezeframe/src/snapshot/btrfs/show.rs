//! Parsing `btrfs subvolume show PATH` (btrfs-progs has no JSON form of it):
//! a pure function, tested on output captured from the real tool
//! (`fixtures/`).

/// What identifies a subvolume and tells a snapshot of ours from a user's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubvolInfo {
    /// Its UUID.
    pub uuid: String,
    /// The UUID of the subvolume it is a snapshot of (`None`: not a snapshot).
    pub parent_uuid: Option<String>,
    /// Read-only flag.
    pub readonly: bool,
    /// Generation (transaction id) of its last change.
    pub generation: u64,
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// `btrfs subvolume show` output without a field every subvolume has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no `{0}:` line in `btrfs subvolume show` output")]
pub struct MissingField(pub &'static str);

/// Parses the output of `LC_ALL=C btrfs subvolume show PATH`.
pub fn parse_show(text: &str) -> Result<SubvolInfo, MissingField> {
    let uuid = field(text, "UUID")
        .filter(|u| u.len() == 36)
        .ok_or(MissingField("UUID"))?;
    let parent_uuid = match field(text, "Parent UUID") {
        None | Some("-") | Some("") => None,
        Some(p) => Some(p.to_owned()),
    };
    let flags = field(text, "Flags").unwrap_or("-");
    let generation = field(text, "Generation")
        .and_then(|g| g.parse().ok())
        .ok_or(MissingField("Generation"))?;
    Ok(SubvolInfo {
        uuid: uuid.to_owned(),
        parent_uuid,
        readonly: flags
            .split(|c: char| c == ',' || c.is_whitespace())
            .any(|f| f == "readonly"),
        generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
        std::fs::read_to_string(format!("{dir}/src/snapshot/btrfs/fixtures/{name}")).unwrap()
    }

    #[test]
    fn snapshot_volume_and_plain_subvolume() {
        let vol = parse_show(&fixture("btrfs_show_volume.txt")).unwrap();
        let snap = parse_show(&fixture("btrfs_show_snapshot.txt")).unwrap();
        let rw = parse_show(&fixture("btrfs_show_rw.txt")).unwrap();
        assert_eq!(vol.uuid, "3ddf8edc-6318-3141-98d1-da4b9fbd68fa");
        assert_eq!(vol.parent_uuid, None);
        assert!(!vol.readonly);
        assert_eq!(snap.parent_uuid.as_deref(), Some(vol.uuid.as_str()));
        assert!(snap.readonly);
        assert_eq!(snap.generation, 7);
        assert_eq!(rw.parent_uuid, None);
        assert!(!rw.readonly);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_show("").is_err());
        assert!(parse_show("UUID: short\nGeneration: 1").is_err());
    }
}
