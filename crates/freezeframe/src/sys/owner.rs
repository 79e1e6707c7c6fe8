//! Who made something freezeframe may remove later (a snapshot, a run
//! folder): the process (PID, start time, boot), its state dir and run. Any
//! process on the host can tell from it whether the maker still runs, so a
//! sweep removes only what is provably abandoned — never what a run of
//! another config on the same host is still using.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::process;

/// Largest owner record read (a record is about 200 bytes).
pub const MAX_OWNER_RECORD: u64 = 16 * 1024;

/// The maker of a snapshot or run folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its PID.
    pub pid: u32,
    /// Its start time, clock ticks since boot (tells it from a reused PID).
    pub started: u64,
    /// The boot it ran in ([`process::boot_id`]).
    pub boot: String,
    /// Its state dir (whose journal knows the step).
    pub state_dir: PathBuf,
    /// Its run id.
    pub run: String,
}

impl Owner {
    /// This process, running `run` with state dir `state_dir`.
    pub fn me(state_dir: &Path, run: &str) -> Self {
        let (pid, started) = process::me();
        Self {
            pid,
            started,
            boot: process::boot_id(),
            state_dir: state_dir.to_owned(),
            run: run.to_owned(),
        }
    }

    /// Whether the maker is still running (same boot, same PID and start).
    pub fn alive(&self) -> bool {
        self.boot == process::boot_id() && process::alive(self.pid, self.started)
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        format!(
            "run {} (PID {}, state dir {})",
            self.run,
            self.pid,
            self.state_dir.display()
        )
    }

    /// The record as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain strings and numbers: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a record; `None` if it is not one.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The process part as an LVM tag (`ffowner_<pid>_<start>_<boot>`,
    /// characters LVM accepts in tags); the state dir and run are not
    /// carried.
    pub fn to_tag(&self) -> String {
        format!(
            "{OWNER_TAG_PREFIX}{}_{}_{}",
            self.pid, self.started, self.boot
        )
    }

    /// Reads a tag written by [`Owner::to_tag`].
    pub fn from_tag(tag: &str) -> Option<Self> {
        let rest = tag.strip_prefix(OWNER_TAG_PREFIX)?;
        let mut f = rest.splitn(3, '_');
        let pid = f.next()?.parse().ok()?;
        let started = f.next()?.parse().ok()?;
        let boot = f.next()?;
        if boot.is_empty() || !boot.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        Some(Self {
            pid,
            started,
            boot: boot.to_owned(),
            state_dir: PathBuf::new(),
            run: String::new(),
        })
    }
}

/// Prefix of the LVM tag that carries an owner.
pub const OWNER_TAG_PREFIX: &str = "ffowner_";

/// Prefix of the LVM tag that carries the owner's state dir, hex-encoded
/// (LVM tags allow few characters).
pub const STATE_TAG_PREFIX: &str = "ffstate_";

/// Longest state dir a tag carries (LVM tags hold 1024 characters, and
/// the tag is hex); the config refuses longer ones, so that every kept
/// LVM base says whose it is.
pub const MAX_STATE_DIR_BYTES: usize = 500;

impl Owner {
    /// The state dir as a second LVM tag (`ffstate_<hex>`), so that a
    /// sweep can tell a kept base of that state dir from an orphan;
    /// `None` for an empty or very long path.
    pub fn state_tag(&self) -> Option<String> {
        use std::os::unix::ffi::OsStrExt;
        let b = self.state_dir.as_os_str().as_bytes();
        (!b.is_empty() && b.len() <= MAX_STATE_DIR_BYTES)
            .then(|| format!("{STATE_TAG_PREFIX}{}", hex::encode(b)))
    }

    /// Fills in the state dir from the tags of an LVM snapshot.
    pub fn with_state_tag<'a>(mut self, tags: impl IntoIterator<Item = &'a str>) -> Self {
        use std::os::unix::ffi::OsStringExt;
        let dir = tags.into_iter().find_map(|t| {
            hex::decode(t.strip_prefix(STATE_TAG_PREFIX)?)
                .ok()
                .filter(|b| !b.is_empty() && !b.contains(&0))
        });
        if let Some(d) = dir {
            self.state_dir = PathBuf::from(std::ffi::OsString::from_vec(d));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_dir_rides_along_in_a_tag_of_its_own() {
        let me = Owner::me(Path::new("/var/lib/ff state"), "r1");
        let tag = me.state_tag().unwrap();
        assert!(tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let back = Owner::from_tag(&me.to_tag())
            .unwrap()
            .with_state_tag(["freezeframe", tag.as_str()]);
        assert_eq!(back.state_dir, Path::new("/var/lib/ff state"));
        let none = Owner::from_tag(&me.to_tag())
            .unwrap()
            .with_state_tag(["ffstate_zz"]);
        assert_eq!(none.state_dir, PathBuf::new());
        let long = Owner::me(&PathBuf::from("/".repeat(600)), "r");
        assert!(long.state_tag().is_none());
    }

    #[test]
    fn this_process_is_alive_and_others_are_not() {
        let me = Owner::me(Path::new("/var/lib/ff"), "r1");
        assert!(me.alive());
        let json = me.to_json();
        assert_eq!(Owner::from_json(&json), Some(me.clone()));
        let mut other_boot = me.clone();
        other_boot.boot = "0".repeat(32);
        assert!(!other_boot.alive(), "a PID of another boot is not this one");
        let mut reused = me.clone();
        reused.started += 1;
        assert!(!reused.alive());
        assert!(Owner::from_json(b"{\"pid\":1}").is_none());
        assert!(Owner::from_json(b"garbage").is_none());
    }

    #[test]
    fn tags_round_trip_the_process() {
        let me = Owner::me(Path::new("/s"), "r");
        let tag = me.to_tag();
        assert!(tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let back = Owner::from_tag(&tag).unwrap();
        assert_eq!(
            (back.pid, back.started, &back.boot),
            (me.pid, me.started, &me.boot)
        );
        assert!(back.alive());
        assert!(Owner::from_tag("freezeframe").is_none());
        assert!(Owner::from_tag("ffowner_1_2_").is_none());
        assert!(Owner::from_tag("ffowner_x_2_ab").is_none());
    }
}
