//! Parsing what OpenVZ's tools and files say: `vzlist` output (JSON from
//! `vzlist -j`, or columns from `vzlist -H -o ctid,status,private`) and the
//! shell-style `KEY="value"` files (`/etc/vz/conf/<CTID>.conf`, `vz.conf`).

use std::collections::HashMap;

use serde::Deserialize;

/// One `vzlist` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VzRow {
    /// CTID.
    pub ctid: String,
    /// `running`, `stopped`, `suspended`, …
    pub status: String,
    /// Private area (`-` when vzlist does not know it).
    pub private: Option<String>,
}

#[derive(Deserialize)]
struct JsonRow {
    ctid: serde_json::Value,
    #[serde(default)]
    status: String,
    #[serde(default)]
    private: Option<String>,
}

/// Parses `vzlist -a -j` (a JSON array of objects).
pub fn vzlist_json(text: &str) -> Result<Vec<VzRow>, String> {
    let rows: Vec<JsonRow> = serde_json::from_str(text)
        .map_err(|e| format!("vzlist -j output is not the expected JSON: {e}"))?;
    Ok(rows
        .into_iter()
        .map(|r| VzRow {
            ctid: match r.ctid {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
            status: r.status,
            private: r.private.filter(|p| !p.is_empty() && p != "-"),
        })
        .collect())
}

/// Parses `vzlist -a -H -o ctid,status,private` (whitespace-separated columns).
pub fn vzlist_columns(text: &str) -> Result<Vec<VzRow>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f[..] {
                [ctid, status] => Ok(VzRow {
                    ctid: ctid.into(),
                    status: status.into(),
                    private: None,
                }),
                [ctid, status, private, ..] => Ok(VzRow {
                    ctid: ctid.into(),
                    status: status.into(),
                    private: (private != "-").then(|| private.to_owned()),
                }),
                _ => Err(format!("vzlist line `{l}` is not `CTID STATUS PRIVATE`")),
            }
        })
        .collect()
}

/// Parses a `KEY="value"` file (comments, blank lines and `export` ignored).
pub fn shell_vars(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

/// Expands `$VEID`, `${VEID}`, `$CTID` and `${CTID}` in a path from vz.conf.
pub fn expand_ctid(value: &str, ctid: &str) -> String {
    ["${VEID}", "${CTID}", "$VEID", "$CTID"]
        .iter()
        .fold(value.to_owned(), |v, k| v.replace(k, ctid))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The layout vzlist(8) documents for -a -H -o ctid,status,private
    // (right-aligned CTID): written down from the documentation, not
    // captured — no OpenVZ host is available here.
    const COLUMNS: &str =
        "       101 running   /vz/private/101\n       102 stopped   /vz/private/102\n";

    #[test]
    fn both_vzlist_formats() {
        let c = vzlist_columns(COLUMNS).unwrap();
        assert_eq!(
            c[0],
            VzRow {
                ctid: "101".into(),
                status: "running".into(),
                private: Some("/vz/private/101".into())
            }
        );
        assert_eq!(c[1].status, "stopped");
        let j = vzlist_json(r#"[{"ctid": 101, "status": "running", "private": "/vz/private/101"}, {"ctid": "102", "status": "stopped", "private": "-"}]"#).unwrap();
        assert_eq!(j[0].ctid, "101");
        assert_eq!(j[1].private, None);
        assert!(vzlist_columns("garbage\n").is_err());
        assert!(vzlist_json("vzlist: invalid option").is_err());
    }

    #[test]
    fn conf_files_and_expansion() {
        let v = shell_vars("# global\nVE_PRIVATE=\"/vz/private/$VEID\"\nDUMPDIR='/vz/dump'\nexport X=1\n\nONBOOT=yes\n");
        assert_eq!(v["VE_PRIVATE"], "/vz/private/$VEID");
        assert_eq!(v["DUMPDIR"], "/vz/dump");
        assert_eq!(v["X"], "1");
        assert_eq!(expand_ctid(&v["VE_PRIVATE"], "101"), "/vz/private/101");
        assert_eq!(expand_ctid("/vz/${CTID}/root", "7"), "/vz/7/root");
    }
}
