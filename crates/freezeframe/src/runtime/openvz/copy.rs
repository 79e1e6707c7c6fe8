//! An OpenVZ container restored under a new CTID: its private area at the
//! `VE_PRIVATE` `vzctl create` would give the new CTID (`vz.conf`), then
//! `<conf_dir>/conf/<NEW>.conf`, rewritten from the backup's, which
//! registers it: the keys bound to the CTID (`VE_PRIVATE`, `VE_ROOT`,
//! `VEID`, the host side of `NETIF`), new MAC addresses, `IP_ADDRESS`
//! dropped unless `--keep-network`, `HOSTNAME` with `--hostname`.

use std::path::Path;

use super::parse::{expand_ctid, shell_vars};
use super::OpenvzRuntime;
use crate::runtime::copy::{
    random_bytes, random_mac, refuse_map_ids, CopiedConfig, CopyPlan, CopyRequest,
};
use crate::runtime::RuntimeError;

/// What changes between the backup's config and the copy's.
#[derive(Debug, Clone)]
pub struct VzRewrite<'a> {
    /// The backed-up CTID.
    pub old: &'a str,
    /// The copy's CTID.
    pub new: &'a str,
    /// The copy's private area.
    pub private: &'a Path,
    /// The copy's `VE_ROOT` from `vz.conf`, expanded, if it sets one.
    pub root: Option<&'a str>,
    /// The copy's `HOSTNAME`.
    pub hostname: Option<&'a str>,
    /// Keep `IP_ADDRESS`.
    pub keep_network: bool,
}

fn has_ctid_var(v: &str) -> bool {
    ["$VEID", "${VEID}", "$CTID", "${CTID}"]
        .iter()
        .any(|k| v.contains(k))
}

/// `NETIF`'s interfaces with new MAC addresses and host-side names.
fn netif(value: &str, r: &VzRewrite<'_>, random: &mut dyn FnMut() -> [u8; 3]) -> String {
    let old_host = format!("veth{}.", r.old);
    value
        .split(';')
        .map(|iface| {
            iface
                .split(',')
                .map(|field| match field.split_once('=') {
                    Some((k @ ("mac" | "host_mac"), v)) => format!("{k}={}", random_mac(v, random)),
                    Some(("host_ifname", v)) if v.starts_with(&old_host) => {
                        format!("host_ifname=veth{}.{}", r.new, &v[old_host.len()..])
                    }
                    _ => field.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The copy's config from the backup's `text`; and what was changed.
pub fn rewrite(
    text: &str,
    r: &VzRewrite<'_>,
    random: &mut dyn FnMut() -> [u8; 3],
) -> Result<(String, Vec<String>), String> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let private = r.private.display().to_string();
    let vars = shell_vars(text);
    for line in text.lines() {
        let t = line.trim();
        let key = (!t.starts_with('#'))
            .then(|| t.strip_prefix("export ").unwrap_or(t).split_once('='))
            .flatten()
            .map(|(k, _)| k.trim());
        let Some(key) = key else {
            out.push(line.to_owned());
            continue;
        };
        let value = vars.get(key).map(String::as_str).unwrap_or("");
        let set = |v: &str| format!("{key}=\"{v}\"");
        match key {
            "VE_PRIVATE" if has_ctid_var(value) && expand_ctid(value, r.new) == private => {
                out.push(line.to_owned())
            }
            "VE_PRIVATE" => out.push(set(&private)),
            "VE_ROOT" if has_ctid_var(value) => out.push(line.to_owned()),
            "VE_ROOT" => {
                let suffix = format!("/{}", r.old);
                let root = match (r.root, value.strip_suffix(&suffix)) {
                    (Some(root), _) => root.to_owned(),
                    (None, Some(parent)) => format!("{parent}/{}", r.new),
                    (None, None) => {
                        return Err(format!(
                            "VE_ROOT=\"{value}\" does not end in /{} and vz.conf sets no VE_ROOT: cannot tell the copy's",
                            r.old
                        ))
                    }
                };
                out.push(set(&root));
            }
            "VEID" | "CTID" => out.push(set(r.new)),
            "HOSTNAME" => match r.hostname {
                Some(h) => out.push(set(h)),
                None => {
                    notes.push(format!(
                        "HOSTNAME=\"{value}\" kept, the original's: --hostname sets another"
                    ));
                    out.push(line.to_owned());
                }
            },
            "IP_ADDRESS" if !r.keep_network => notes.push(format!(
                "dropped IP_ADDRESS=\"{value}\" (the original has it; --keep-network keeps it)"
            )),
            "NETIF" => out.push(set(&netif(value, r, random))),
            "UUID" | "NAME" => notes.push(format!(
                "dropped {key}=\"{value}\": it must be unique on the host"
            )),
            _ => out.push(line.to_owned()),
        }
    }
    if let Some(h) = r.hostname.filter(|_| !vars.contains_key("HOSTNAME")) {
        out.push(format!("HOSTNAME=\"{h}\""));
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok((text, notes))
}

impl OpenvzRuntime {
    pub(super) fn plan_copy(&self, req: &CopyRequest) -> Result<CopyPlan, RuntimeError> {
        let id = req.new_id.as_str();
        let invalid = |message: String| req.invalid(message);
        refuse_map_ids(req)?;
        let conf = self.ct_conf(id);
        if req.to.is_some() {
            return Err(invalid(
                "--to: an OpenVZ container's private area is its VE_PRIVATE (vz.conf); leave out --to"
                    .into(),
            ));
        }
        if std::fs::symlink_metadata(&conf).is_ok() || self.vzlist()?.iter().any(|r| r.ctid == id) {
            return Err(invalid(format!(
                "container {id} exists ({}): pick another CTID (nothing was written)",
                conf.display()
            )));
        }
        let private = self.var(id, "VE_PRIVATE").ok_or_else(|| {
            invalid(format!(
                "{} sets no VE_PRIVATE: cannot tell where {id}'s private area goes",
                self.conf_dir.join("vz.conf").display()
            ))
        })?;
        let folder = Path::new(&private).to_owned();
        if std::fs::symlink_metadata(&folder).is_ok() {
            return Err(invalid(format!(
                "{id}'s private area {} exists: remove it or pick another CTID (nothing was written)",
                folder.display()
            )));
        }
        Ok(CopyPlan {
            folder,
            tree: None,
            folder_mode: 0o700,
            config: Some(conf),
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
            &format!("{old}.conf"),
            &format!("write {new}.conf by hand"),
        )?;
        let private = self.var(new, "VE_PRIVATE").unwrap_or_default();
        let root = self.var(new, "VE_ROOT");
        let rw = VzRewrite {
            old,
            new,
            private: Path::new(&private),
            root: root.as_deref(),
            hostname: req.hostname.as_deref(),
            keep_network: req.keep_network,
        };
        let (text, notes) = rewrite(text, &rw, &mut random_bytes)
            .map_err(|e| invalid(format!("the backed-up {old}.conf: {e}")))?;
        Ok(CopiedConfig {
            text: Some(text),
            notes,
            ..CopiedConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A venet and a veth container's keys as vzctl 4.x writes them
    // (vzctl(8), ctid.conf(5)): written down from the documentation.
    const CONF: &str = "# Configuration of a CT\nONBOOT=\"yes\"\nVE_ROOT=\"/vz/root/$VEID\"\nVE_PRIVATE=\"/vz/private/101\"\n\
OSTEMPLATE=\"debian-12-x86_64\"\nHOSTNAME=\"web1\"\nIP_ADDRESS=\"10.0.0.5 10.0.0.6\"\n\
NETIF=\"ifname=eth0,mac=00:18:51:aa:bb:cc,host_ifname=veth101.0,host_mac=00:18:51:dd:ee:ff\"\nVEID=\"101\"\nUUID=\"1b2c\"\n";

    fn rw(keep: bool, hostname: Option<&'static str>) -> VzRewrite<'static> {
        VzRewrite {
            old: "101",
            new: "202",
            private: Path::new("/vz/private/202"),
            root: Some("/vz/root/202"),
            hostname,
            keep_network: keep,
        }
    }

    #[test]
    fn rewrites_the_ctid_bound_keys() {
        let (t, notes) = rewrite(CONF, &rw(false, None), &mut || [1, 2, 3]).unwrap();
        assert!(t.contains("VE_PRIVATE=\"/vz/private/202\"\n"), "{t}");
        assert!(
            t.contains("VE_ROOT=\"/vz/root/$VEID\"\n"),
            "expands for 202: {t}"
        );
        assert!(t.contains("VEID=\"202\"\n"), "{t}");
        assert!(
            t.contains("NETIF=\"ifname=eth0,mac=00:18:51:01:02:03,host_ifname=veth202.0,host_mac=00:18:51:01:02:03\"\n"),
            "{t}"
        );
        assert!(t.contains("HOSTNAME=\"web1\"\nNETIF"), "kept: {t}");
        for gone in ["IP_ADDRESS", "UUID", "101", "aa:bb:cc"] {
            assert!(!t.contains(gone), "{gone} in {t}");
        }
        assert!(t.starts_with("# Configuration of a CT") && t.contains("OSTEMPLATE="));
        assert!(notes.iter().any(|n| n.contains("IP_ADDRESS")), "{notes:?}");

        let (t, _) = rewrite(CONF, &rw(true, Some("web2")), &mut || [1, 2, 3]).unwrap();
        assert!(t.contains("IP_ADDRESS=\"10.0.0.5 10.0.0.6\"\n"));
        assert!(t.contains("HOSTNAME=\"web2\"\n"));
        let (t, _) = rewrite("ONBOOT=yes\n", &rw(false, Some("h")), &mut || [0; 3]).unwrap();
        assert_eq!(t, "ONBOOT=yes\nHOSTNAME=\"h\"\n");
    }

    #[test]
    fn ve_root_without_a_template() {
        let mut r = rw(false, None);
        r.root = None;
        let (t, _) = rewrite("VE_ROOT=\"/srv/root/101\"\n", &r, &mut || [0; 3]).unwrap();
        assert_eq!(t, "VE_ROOT=\"/srv/root/202\"\n");
        assert!(rewrite("VE_ROOT=\"/srv/r\"\n", &r, &mut || [0; 3]).is_err());
    }
}
