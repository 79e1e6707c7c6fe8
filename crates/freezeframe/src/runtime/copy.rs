//! What a runtime answers for `restore ID --as NEWID`: where the copy's
//! files go ([`CopyPlan`], known before anything is written) and, once the
//! backup's tree and config are restored, the new container's config
//! ([`CopiedConfig`]). The engine does the writing (`engine/copy.rs`).

use std::path::PathBuf;

use crate::archive::idshift::{IdMap, IdShift};
use crate::config::{ContainerId, ContainerSpec};

/// A restore under a new id.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// The container backed up.
    pub source: ContainerId,
    /// Its entry in the config, if it is still configured.
    pub source_spec: Option<ContainerSpec>,
    /// The id the copy is registered under.
    pub new_id: ContainerId,
    /// Whether the config already has an entry of that id.
    pub new_configured: bool,
    /// Where the tree goes, for runtimes that do not place it themselves
    /// (cgroup); the others refuse it.
    pub to: Option<PathBuf>,
    /// Keep the IP addresses (default: dropped, the original still has them).
    pub keep_network: bool,
    /// The copy's host name (default: the runtime's rule, see each).
    pub hostname: Option<String>,
    /// Shift the tree's owners to this id map (unprivileged LXC).
    pub map_ids: Option<IdMap>,
}

impl CopyRequest {
    /// A refusal of this copy: `message` says what is wrong and what to do.
    pub fn invalid(&self, message: impl Into<String>) -> crate::runtime::RuntimeError {
        crate::runtime::RuntimeError::Invalid {
            id: self.new_id.to_string(),
            message: message.into(),
        }
    }

    /// The backed-up config, which the runtime needs to write the copy's:
    /// a backup without one is refused, saying `what` is missing and what
    /// to do by hand instead.
    pub fn archived<'a>(
        &self,
        archived: Option<&'a str>,
        what: &str,
        by_hand: &str,
    ) -> Result<&'a str, crate::runtime::RuntimeError> {
        archived.ok_or_else(|| {
            self.invalid(format!(
                "the backup holds no {what}: restore its files with --to and {by_hand}"
            ))
        })
    }
}

/// Where a copy's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPlan {
    /// The folder that appears, by one rename, with the tree in it; it must
    /// not exist.
    pub folder: PathBuf,
    /// Where the tree goes inside `folder` (`None`: `folder` is the tree).
    pub tree: Option<PathBuf>,
    /// Permission bits of `folder` when it is not the tree itself.
    pub folder_mode: u32,
    /// The config file whose writing registers the copy (written last,
    /// once the folder is in place; it may be inside the folder). `None`:
    /// nothing to register with (cgroup: an entry to add to freezeframe's
    /// config is printed instead).
    pub config: Option<PathBuf>,
}

/// The copy's config, from the backup's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopiedConfig {
    /// The text to write at [`CopyPlan::config`].
    pub text: Option<String>,
    /// Owners to shift in the restored tree.
    pub shift: Option<IdShift>,
    /// Owner (host uid, gid) of [`CopyPlan::folder`] when it is not the tree
    /// (an unprivileged LXC container's folder belongs to its root).
    pub folder_owner: Option<(u32, u32)>,
    /// For the operator to add by hand (cgroup: the `[[container]]` entry).
    pub entry: Option<String>,
    /// What was changed or dropped, and what to check.
    pub notes: Vec<String>,
}

/// Refuses `--map-ids` for runtimes without user namespaces of their own.
pub fn refuse_map_ids(req: &CopyRequest) -> Result<(), crate::runtime::RuntimeError> {
    match req.map_ids {
        Some(_) => Err(req.invalid("--map-ids is for unprivileged LXC containers")),
        None => Ok(()),
    }
}

/// Checks a host name for `--hostname` (RFC 1123: labels of letters,
/// digits and `-`, not starting or ending with `-`, joined by `.`): it is
/// written into config files, so nothing else may pass.
pub fn check_hostname(name: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "--hostname `{name}` is not a host name: use letters, digits and `-` in labels joined by `.`"
        ))
    }
}

/// A random locally administered MAC address keeping the first three
/// octets of `like` (LXC's `00:16:3e`, OpenVZ's `00:18:51`) when it has them.
pub fn random_mac(like: &str, random: &mut dyn FnMut() -> [u8; 3]) -> String {
    let oui: Vec<&str> = like.split(':').take(3).collect();
    let oui = if oui.len() == 3 && oui.iter().all(|o| u8::from_str_radix(o, 16).is_ok()) {
        oui.join(":")
    } else {
        "02:00:00".to_owned()
    };
    let r = random();
    format!("{oui}:{:02x}:{:02x}:{:02x}", r[0], r[1], r[2])
}

/// Three bytes from the kernel's random source.
pub fn random_bytes() -> [u8; 3] {
    let mut b = [0u8; 3];
    if getrandom::fill(&mut b).is_err() {
        // Not secret, only distinct: fall back to the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        b.copy_from_slice(&t.to_le_bytes()[..3]);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["web2", "web-2.example.org", "a"] {
            check_hostname(ok).unwrap();
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a\"\nIP_ADDRESS=\"1.2.3.4",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_keep_the_vendor_part() {
        let mut r = || [0xab, 0x01, 0xff];
        assert_eq!(random_mac("00:16:3e:12:34:56", &mut r), "00:16:3e:ab:01:ff");
        assert_eq!(random_mac("garbage", &mut r), "02:00:00:ab:01:ff");
    }
}
