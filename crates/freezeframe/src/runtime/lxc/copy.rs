//! An LXC container restored under a new name: a new folder
//! `<lxcpath>/<NEW>` holding `rootfs/`, then `config` (LXC knows a
//! container by that file), rewritten
//! from the backup's (name, root file system, MAC addresses, host-side
//! interface names; IP addresses unless `--keep-network`; the id map with
//! `--map-ids`).

use std::path::{Path, PathBuf};

use super::LxcRuntime;
use crate::archive::idshift::{IdKind, IdMap, IdRange, IdShift};
use crate::runtime::copy::{random_bytes, random_mac, CopiedConfig, CopyPlan, CopyRequest};
use crate::runtime::RuntimeError;

/// The folder of a container LXC creates: `rwxrwx---`, as `lxc-create` makes it.
const CONTAINER_DIR_MODE: u32 = 0o770;

/// What changes between the backup's config and the copy's.
#[derive(Debug, Clone)]
pub struct LxcRewrite<'a> {
    /// The backed-up container's name.
    pub old_name: &'a str,
    /// The copy's name.
    pub new_name: &'a str,
    /// The backed-up container's folder (`<lxcpath>/<old>`).
    pub old_dir: &'a Path,
    /// The copy's folder.
    pub new_dir: &'a Path,
    /// The copy's host name (default: its name, if the old one was the
    /// old container's name).
    pub hostname: Option<&'a str>,
    /// Keep `ipv4/ipv6` addresses and gateways.
    pub keep_network: bool,
    /// The copy's id map, replacing `lxc.idmap`.
    pub map_ids: Option<&'a IdMap>,
}

/// A rewritten config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The copy's config.
    pub text: String,
    /// The id map of the backed-up container (empty: privileged).
    pub old_map: IdMap,
    /// The copy's id map.
    pub new_map: IdMap,
    /// What was changed or dropped.
    pub notes: Vec<String>,
}

/// `lxc.net.<n>.<field>` → `(n, field)`.
fn net_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix("lxc.net.")?.split_once('.')
}

/// The copy's config from the backup's `text`.
pub fn rewrite(
    text: &str,
    r: &LxcRewrite<'_>,
    random: &mut dyn FnMut() -> [u8; 3],
) -> Result<Rewritten, String> {
    let mut pass = Pass {
        r,
        old_dir: r.old_dir.display().to_string(),
        out: Vec::new(),
        notes: Vec::new(),
        old_map: IdMap::default(),
        rootfs: false,
        map_at: None,
    };
    for line in text.lines() {
        pass.line(line, random)?;
    }
    pass.finish()
}

/// A rewrite under way, line by line.
struct Pass<'r, 'a> {
    r: &'r LxcRewrite<'a>,
    old_dir: String,
    out: Vec<String>,
    notes: Vec<String>,
    old_map: IdMap,
    rootfs: bool,
    /// Where the new `lxc.idmap` lines go (where the old ones were).
    map_at: Option<usize>,
}

impl Pass<'_, '_> {
    fn line(&mut self, line: &str, random: &mut dyn FnMut() -> [u8; 3]) -> Result<(), String> {
        let r = self.r;
        let Some((k, v)) = line
            .split_once('=')
            .filter(|_| !line.trim_start().starts_with('#'))
        else {
            self.out.push(line.to_owned());
            return Ok(());
        };
        let (key, value) = (k.trim(), v.trim());
        let set = |v: &str| format!("{key} = {v}");
        match (key, net_key(key)) {
            ("lxc.uts.name", _) => {
                let unquoted = value.trim_matches('"');
                let name = match r.hostname {
                    Some(h) => h,
                    None if unquoted == r.old_name => r.new_name,
                    None => unquoted,
                };
                self.out.push(set(name));
            }
            ("lxc.rootfs.path", _) => {
                self.rootfs = true;
                let new = r.new_dir.join("rootfs");
                if super::rootfs_of(line).as_deref() != Some(&r.old_dir.join("rootfs"))
                    || !matches!(value.split_once(':'), Some(("dir", _)) | None)
                {
                    self.notes.push(format!(
                        "lxc.rootfs.path was `{value}`: the copy's root file system is the folder {}",
                        new.display()
                    ));
                }
                self.out.push(set(&format!("dir:{}", new.display())));
            }
            ("lxc.idmap", _) => {
                let ranges =
                    IdRange::parse(value).map_err(|e| format!("lxc.idmap = {value}: {e}"))?;
                self.old_map.0.extend(ranges);
                if r.map_ids.is_some() {
                    self.map_at.get_or_insert(self.out.len());
                } else {
                    self.out.push(line.to_owned());
                }
            }
            (_, Some((_, "hwaddr"))) if !value.contains('x') => {
                self.out.push(set(&random_mac(value, random)));
            }
            (_, Some((n, "veth.pair"))) => self.notes.push(format!(
                "dropped lxc.net.{n}.veth.pair = {value}: a host interface name is the original's; LXC picks one"
            )),
            (_, Some((n, f @ ("ipv4.address" | "ipv4.gateway" | "ipv6.address" | "ipv6.gateway"))))
                if !r.keep_network =>
            {
                self.notes.push(format!(
                    "dropped lxc.net.{n}.{f} = {value} (the original has it; --keep-network keeps it)"
                ));
            }
            _ if value == self.old_dir || value.starts_with(&format!("{}/", self.old_dir)) => {
                let new = format!("{}{}", r.new_dir.display(), &value[self.old_dir.len()..]);
                self.notes.push(format!(
                    "{key} now names {new}: copy that file from the original if the copy needs it (the backup holds only the root file system and the config)"
                ));
                self.out.push(set(&new));
            }
            _ => self.out.push(line.to_owned()),
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Rewritten, String> {
        if !self.rootfs {
            return Err("it has no lxc.rootfs.path".into());
        }
        let new_map = match self.r.map_ids {
            Some(m) => {
                let at = self.map_at.unwrap_or(self.out.len());
                let lines = m.0.iter().map(|x| format!("lxc.idmap = {}", x.lxc_value()));
                self.out.splice(at..at, lines);
                m.clone()
            }
            None => self.old_map.clone(),
        };
        let mut text = self.out.join("\n");
        text.push('\n');
        Ok(Rewritten {
            text,
            old_map: self.old_map,
            new_map,
            notes: self.notes,
        })
    }
}

impl LxcRuntime {
    pub(super) fn plan_copy(&self, req: &CopyRequest) -> Result<CopyPlan, RuntimeError> {
        let id = req.new_id.as_str();
        let invalid = |message: String| req.invalid(message);
        if req.to.is_some() {
            return Err(invalid(format!(
                "--to: an LXC container lives in lxcpath: the copy goes to {}; leave out --to",
                self.lxc_path.join(id).display()
            )));
        }
        let folder = self.lxc_path.join(id);
        if std::fs::symlink_metadata(&folder).is_ok() {
            return Err(invalid(format!(
                "{} exists: LXC already has a container of that name; pick another name (nothing was written)",
                folder.display()
            )));
        }
        Ok(CopyPlan {
            config: Some(folder.join("config")),
            folder,
            tree: Some(PathBuf::from("rootfs")),
            folder_mode: CONTAINER_DIR_MODE,
        })
    }

    pub(super) fn copy_config(
        &self,
        req: &CopyRequest,
        archived: Option<&str>,
    ) -> Result<CopiedConfig, RuntimeError> {
        let (old, new) = (req.source.as_str(), req.new_id.as_str());
        let invalid = |message: String| req.invalid(message);
        let text = req.archived(
            archived,
            &format!("LXC config of {old}"),
            "create the container by hand",
        )?;
        let rw = LxcRewrite {
            old_name: old,
            new_name: new,
            old_dir: &self.lxc_path.join(old),
            new_dir: &self.lxc_path.join(new),
            hostname: req.hostname.as_deref(),
            keep_network: req.keep_network,
            map_ids: req.map_ids.as_ref(),
        };
        let r = rewrite(text, &rw, &mut random_bytes)
            .map_err(|e| invalid(format!("the backed-up config of {old}: {e}")))?;
        let mut notes = r.notes;
        let shift = match &req.map_ids {
            None => {
                if !r.old_map.0.is_empty() {
                    notes.push(format!(
                        "{new} has {old}'s id map: give --map-ids for one of its own"
                    ));
                }
                None
            }
            Some(m) => {
                if let Some((kind, id)) = r.old_map.uncovered_by(m) {
                    return Err(invalid(format!(
                        "--map-ids gives no host id for {} {id}, which {old} has: map every id of {old}'s lxc.idmap",
                        if kind == IdKind::User { "uid" } else { "gid" }
                    )));
                }
                Some(IdShift {
                    from: r.old_map.clone(),
                    to: m.clone(),
                })
            }
        };
        let folder_owner = (!r.new_map.0.is_empty())
            .then(|| {
                Some((
                    r.new_map.to_host(IdKind::User, 0)?,
                    r.new_map.to_host(IdKind::Group, 0)?,
                ))
            })
            .flatten();
        Ok(CopiedConfig {
            text: Some(r.text),
            shift,
            folder_owner,
            entry: None,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What `lxc-create -t busybox` wrote on Debian 12 (LXC 5.0), with a
    // network section, a static address and an id map added.
    const CONFIG: &str =
        "# Template used to create this container: /usr/share/lxc/templates/lxc-busybox\n\
lxc.net.0.type = veth\n\
lxc.net.0.link = lxcbr0\n\
lxc.net.0.flags = up\n\
lxc.net.0.hwaddr = 00:16:3e:8a:1b:2c\n\
lxc.net.0.veth.pair = vethold0\n\
lxc.net.0.ipv4.address = 10.0.3.15/24\n\
lxc.net.0.ipv4.gateway = 10.0.3.1\n\
lxc.net.1.type = veth\n\
lxc.net.1.hwaddr = 00:16:3e:xx:xx:xx\n\
lxc.rootfs.path = dir:/var/lib/lxc/old/rootfs\n\
lxc.idmap = u 0 100000 65536\n\
lxc.idmap = g 0 100000 65536\n\
lxc.signal.halt = SIGUSR1\n\
lxc.mount.fstab = /var/lib/lxc/old/fstab\n\
lxc.uts.name = \"old\"\n";

    fn rw<'a>(map: Option<&'a IdMap>, keep: bool) -> LxcRewrite<'a> {
        LxcRewrite {
            old_name: "old",
            new_name: "new",
            old_dir: Path::new("/var/lib/lxc/old"),
            new_dir: Path::new("/var/lib/lxc/new"),
            hostname: None,
            keep_network: keep,
            map_ids: map,
        }
    }

    #[test]
    fn rewrites_what_names_the_old_container() {
        let r = rewrite(CONFIG, &rw(None, false), &mut || [1, 2, 3]).unwrap();
        let t = &r.text;
        assert!(
            t.contains("lxc.rootfs.path = dir:/var/lib/lxc/new/rootfs\n"),
            "{t}"
        );
        assert!(t.contains("lxc.uts.name = new\n"), "{t}");
        assert!(t.contains("lxc.net.0.hwaddr = 00:16:3e:01:02:03\n"), "{t}");
        assert!(
            t.contains("lxc.net.1.hwaddr = 00:16:3e:xx:xx:xx\n"),
            "LXC fills x: {t}"
        );
        assert!(
            t.contains("lxc.mount.fstab = /var/lib/lxc/new/fstab\n"),
            "{t}"
        );
        for gone in ["veth.pair", "10.0.3.15", "10.0.3.1", "8a:1b:2c", "/old/"] {
            assert!(!t.contains(gone), "{gone} in {t}");
        }
        assert!(t.starts_with("# Template used") && t.contains("lxc.signal.halt = SIGUSR1\n"));
        assert!(t.contains("lxc.idmap = u 0 100000 65536\n"), "kept: {t}");
        assert_eq!(r.old_map, r.new_map);
        assert_eq!(r.old_map.0.len(), 2);
        assert!(
            r.notes.iter().any(|n| n.contains("ipv4.address")),
            "{:?}",
            r.notes
        );
        assert!(r.notes.iter().any(|n| n.contains("fstab")), "{:?}", r.notes);

        let kept = rewrite(CONFIG, &rw(None, true), &mut || [1, 2, 3]).unwrap();
        assert!(kept
            .text
            .contains("lxc.net.0.ipv4.address = 10.0.3.15/24\n"));
        let mut named = rw(None, false);
        named.hostname = Some("web2");
        let h = rewrite(CONFIG, &named, &mut || [1, 2, 3]).unwrap();
        assert!(h.text.contains("lxc.uts.name = web2\n"));
    }

    #[test]
    fn map_ids_replaces_the_id_map_in_place() {
        let m = IdMap(IdRange::parse("b 0 200000 65536").unwrap());
        let r = rewrite(CONFIG, &rw(Some(&m), false), &mut || [1, 2, 3]).unwrap();
        assert!(
            r.text.contains(
                "lxc.rootfs.path = dir:/var/lib/lxc/new/rootfs\nlxc.idmap = u 0 200000 65536\nlxc.idmap = g 0 200000 65536\nlxc.signal.halt"
            ),
            "{}",
            r.text
        );
        assert!(!r.text.contains("100000"));
        assert_eq!(r.new_map, m);
    }

    #[test]
    fn refuses_configs_it_cannot_rewrite() {
        assert!(rewrite("lxc.uts.name = x\n", &rw(None, false), &mut || [0; 3]).is_err());
        assert!(rewrite(
            "lxc.rootfs.path = /r\nlxc.idmap = u 0 x 1\n",
            &rw(None, false),
            &mut || [0; 3]
        )
        .is_err());
    }
}
