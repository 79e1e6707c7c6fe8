//! Restore drills: prove a backup restores. The newest (or a named) backup
//! of a container is restored into a scratch folder (every checksum is
//! checked on the way: zstd/bzip2/gzip frames and BLAKE3 for tar, each
//! blob's MAC for a repository), the restored tree is compared entry by
//! entry with the backup's own listing (kind, and size for files), an
//! optional check command runs inside the scratch tree, and the scratch
//! folder is removed whatever happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::walk::{walk, Entry, Kind, Visitor};
use crate::sys::{Cancel, Cmd, CommandRunner, Faults};
use crate::target::browse::escape;
use crate::target::{RestoreRequest, Target, Which};

/// The prefix of a drill's scratch folder; the PID and container follow.
pub const SCRATCH_PREFIX: &str = "drill-";

/// What a drill found for one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillResult {
    /// Container id.
    pub id: String,
    /// The backup restored (run id, or snapshot id).
    pub backup: Option<String>,
    /// When the drill ended.
    pub at: DateTime<Utc>,
    /// Whether every step passed.
    pub ok: bool,
    /// What failed, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Entries restored and compared.
    pub entries: u64,
    /// Bytes of file data restored.
    pub bytes: u64,
    /// How long it took, seconds.
    pub seconds: f64,
}

/// One drill to run.
pub struct DrillRequest<'a> {
    /// Container id.
    pub id: &'a str,
    /// The backup (`None`: the newest complete one).
    pub run: Option<&'a str>,
    /// The folder scratch folders go into (created if needed).
    pub scratch: &'a Path,
    /// Run inside the restored tree with `sh -c`; must exit 0.
    pub check: Option<&'a str>,
    /// Longest the check may run.
    pub check_timeout: Duration,
}

/// Runs one drill. Never leaves its scratch folder behind (unless killed:
/// then `recover` removes it).
pub fn drill(
    target: &dyn Target,
    req: &DrillRequest<'_>,
    runner: &dyn CommandRunner,
    faults: &Faults,
    cancel: &Cancel,
) -> DrillResult {
    let t0 = std::time::Instant::now();
    let scratch = req
        .scratch
        .join(format!("{SCRATCH_PREFIX}{}-{}", std::process::id(), req.id));
    let mut r = DrillResult {
        id: req.id.to_owned(),
        backup: None,
        at: Utc::now(),
        ok: false,
        error: None,
        entries: 0,
        bytes: 0,
        seconds: 0.0,
    };
    let outcome = steps(target, req, runner, faults, cancel, &scratch, &mut r);
    if let Err(e) = std::fs::remove_dir_all(&scratch) {
        if e.kind() != std::io::ErrorKind::NotFound && outcome.is_ok() {
            r.error = Some(format!(
                "scratch folder {} not removed: {e}",
                scratch.display()
            ));
        }
    }
    for ext in [".conf", ".dump"] {
        let mut side = scratch.clone().into_os_string();
        side.push(ext);
        let _ = std::fs::remove_file(side);
    }
    match outcome {
        Ok(()) => r.ok = r.error.is_none(),
        Err(e) => r.error = Some(e),
    }
    r.at = Utc::now();
    r.seconds = t0.elapsed().as_secs_f64();
    r
}

fn steps(
    target: &dyn Target,
    req: &DrillRequest<'_>,
    runner: &dyn CommandRunner,
    faults: &Faults,
    cancel: &Cancel,
    scratch: &Path,
    r: &mut DrillResult,
) -> Result<(), String> {
    let backup = target
        .find(&Which {
            container: req.id,
            run: req.run,
        })
        .map_err(|e| format!("no backup to drill: {e}"))?;
    r.backup = Some(backup.id.clone());
    std::fs::create_dir_all(req.scratch)
        .map_err(|e| format!("creating {}: {e}", req.scratch.display()))?;
    let restored = target
        .restore(
            &RestoreRequest {
                id: req.id.to_owned(),
                run: Some(backup.id.clone()),
                to: scratch.to_owned(),
                force: false,
                include: Vec::new(),
            },
            faults,
            cancel,
        )
        .map_err(|e| format!("restore failed: {e}"))?;
    r.entries = restored.extract.entries;
    r.bytes = restored.extract.bytes;
    let listed = target
        .ls(&backup, None)
        .map_err(|e| format!("listing the backup failed: {e}"))?;
    compare(scratch, &listed)?;
    if let Some(check) = req.check {
        runner
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg(check)
                    .env("FF_CONTAINER", req.id)
                    .env("FF_DRILL_ROOT", scratch.as_os_str())
                    .cwd(scratch)
                    .timeout(req.check_timeout),
            )
            .map_err(|e| format!("check command failed: {e}"))?;
    }
    Ok(())
}

/// Every entry the backup lists is in the restored tree with the same
/// kind (and size, for a file), and nothing else is.
fn compare(root: &Path, listed: &[crate::target::LsEntry]) -> Result<(), String> {
    let mut got = Tree::default();
    walk(root, &mut got).map_err(|e| format!("reading the restored tree: {e}"))?;
    if let Some(p) = got.problems.first() {
        return Err(format!("restored tree unreadable: {p}"));
    }
    let mut diffs = Vec::new();
    let mut want: BTreeMap<&str, (Kind, u64)> = BTreeMap::new();
    // A restore does not recreate sockets (their owners do, when they
    // start); a repository lists them.
    for e in listed.iter().filter(|e| e.kind != Kind::Socket) {
        want.insert(e.path.as_str(), (e.kind, e.size));
    }
    for (path, (kind, size)) in &want {
        match got.entries.get(*path) {
            None => diffs.push(format!("{path}: missing")),
            Some((k, _)) if k != kind => {
                diffs.push(format!("{path}: a {k}, the backup has a {kind}"))
            }
            Some((Kind::File, s)) if s != size => {
                diffs.push(format!("{path}: {s} bytes, the backup has {size}"))
            }
            Some(_) => {}
        }
    }
    for path in got.entries.keys() {
        if !want.contains_key(path.as_str()) {
            diffs.push(format!("{path}: not in the backup's listing"));
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let n = diffs.len();
    diffs.truncate(10);
    Err(format!(
        "the restored tree differs from the backup's listing in {n} entries: {}",
        diffs.join("; ")
    ))
}

/// The restored tree: escaped relative path → kind and size.
#[derive(Default)]
struct Tree {
    entries: BTreeMap<String, (Kind, u64)>,
    problems: Vec<String>,
}

impl Visitor for Tree {
    fn visit(&mut self, e: &Entry<'_>) -> std::io::Result<bool> {
        if let Some(rel) = e.rel.strip_prefix(b"./") {
            self.entries.insert(escape(rel), (e.meta.kind, e.meta.size));
        }
        Ok(e.meta.is_dir())
    }

    fn problem(&mut self, rel: &[u8], what: &str, error: &std::io::Error) {
        self.problems
            .push(format!("{}: {what}: {error}", escape(rel)));
    }
}

/// Removes scratch folders of drills whose process is gone, in `scratch`.
pub fn remove_stale_scratch(scratch: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(scratch) else {
        return removed;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = rustix::process::Pid::from_raw(pid as i32)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
        if pid == std::process::id() || alive {
            continue;
        }
        let path: PathBuf = e.path();
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(format!(
                "removed what a killed drill left: {}",
                path.display()
            ));
        }
    }
    removed
}
