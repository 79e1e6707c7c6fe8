//! The S3 test server (`../shared/testbed/s3-server-up.sh`, SeaweedFS on
//! loopback): its settings, and a repository target in it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::{require, unique};

/// The server's settings from `s3-server-up.sh`'s env file.
pub fn s3_env() -> Option<BTreeMap<String, String>> {
    let dir = std::env::var("S3_WORK").unwrap_or_else(|_| "/var/tmp/s3test".into());
    let text = std::fs::read_to_string(Path::new(&dir).join("env")).ok()?;
    let mut m = BTreeMap::new();
    // `export A=1 B=2` lines.
    for word in text.split_whitespace().filter(|w| *w != "export") {
        if let Some((k, v)) = word.split_once('=') {
            m.insert(
                k.to_owned(),
                v.trim_matches(|c| c == '"' || c == '\'').to_owned(),
            );
        }
    }
    Some(m)
}

/// Whether the server answers.
pub fn s3_up(m: &BTreeMap<String, String>) -> bool {
    m.get("S3_ENDPOINT").is_some_and(|e| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-m", "5", e])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// A fresh repository location in the test bucket.
pub struct S3Repo {
    /// The `[target.s3]` section for a freezeframe config.
    pub target: String,
    /// The same location as restic names it.
    pub restic: String,
    /// The keys, as a host exports them.
    pub keys: Vec<(String, String)>,
}

/// A new, unique repository folder in the server's bucket; `None` (and
/// the test skipped, or failed under CI) if the server is not up.
pub fn s3_repo() -> Option<S3Repo> {
    let s3 = s3_env();
    if !require(
        "S3 server (bash ../shared/testbed/s3-server-up.sh)",
        s3.as_ref().is_some_and(s3_up),
    ) {
        return None;
    }
    let s3 = s3?;
    let (endpoint, bucket) = (&s3["S3_ENDPOINT"], &s3["S3_BUCKET"]);
    let root = unique("ff-repo");
    Some(S3Repo {
        target: format!(
            "[target.s3]\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nroot = \"/{root}\"\n"
        ),
        restic: format!("s3:{endpoint}/{bucket}/{root}"),
        keys: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
            .iter()
            .map(|k| ((*k).to_owned(), s3[*k].clone()))
            .collect(),
    })
}
