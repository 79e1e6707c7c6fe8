//! Planning a backup: which containers, on which volumes, how — and every
//! check that can fail before anything is frozen.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    Compression, Config, Container, ContainerSpec, Mode, Strategy, Volume, MAX_JOBS,
};
use crate::engine::Toolbox;
use crate::runtime::RuntimeError;
use crate::snapshot::SnapshotError;
use crate::sys::mountinfo::{mounts_inside, MountEntry};
use crate::sys::shown::{escape, escape_path};
use crate::target::{MountRecord, Store, StoreError};

/// What the operator asked for (command line over config defaults).
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// Container ids; empty with `all` = every configured container.
    pub ids: Vec<String>,
    /// Back up every configured container.
    pub all: bool,
    /// Mode override.
    pub mode: Option<Mode>,
    /// Strategy override.
    pub strategy: Option<Strategy>,
    /// Compression override.
    pub compress: Option<Compression>,
    /// Level override.
    pub level: Option<i32>,
    /// Parallel archive jobs override.
    pub jobs: Option<usize>,
    /// Only plan: check nothing that writes.
    pub dry_run: bool,
    /// Exclude patterns for every selected container (`--exclude`), after
    /// each container's own.
    pub exclude: Vec<String>,
}

/// The containers of one volume.
#[derive(Debug, Clone)]
pub struct VolumePlan {
    /// The volume.
    pub volume: Volume,
    /// Its containers to back up, in the order given.
    pub containers: Vec<Container>,
}

/// Everything a run will do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Mode.
    pub mode: Mode,
    /// Strategy.
    pub strategy: Strategy,
    /// Compression.
    pub compression: Compression,
    /// Level.
    pub level: i32,
    /// Containers archived at once.
    pub jobs: usize,
    /// Compression threads per archive.
    pub threads_per_job: usize,
    /// Longest a freeze may take.
    pub freeze_timeout: Duration,
    /// Target folder (for a repository target: where run reports go).
    pub target: PathBuf,
    /// The repository backups go into (`None`: tar archives).
    pub repository: Option<String>,
    /// Where the journal lives (`None`: no journal, for tests on fakes).
    pub state_dir: Option<PathBuf>,
    /// Work per volume.
    pub volumes: Vec<VolumePlan>,
    /// File systems mounted inside each container's private area, by id.
    pub mounts: BTreeMap<String, Vec<MountRecord>>,
    /// What the archive phase is limited to (`[throttle]`).
    pub throttle: super::throttle::ThrottlePlan,
}

impl Plan {
    /// Whether each run keeps its snapshot of `v` as the base of the next
    /// (see [`Volume::keeps_base`]; into a repository only).
    pub fn keeps_base(&self, v: &Volume) -> bool {
        self.repository.is_some() && self.state_dir.is_some() && v.keeps_base()
    }

    /// Number of containers.
    pub fn container_count(&self) -> usize {
        self.volumes.iter().map(|v| v.containers.len()).sum()
    }

    /// A human description of the plan (for `--dry-run`).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "plan: mode {}, strategy {}, {} level {}, {} job(s) × {} compression thread(s), freeze timeout {:?}",
            self.mode, self.strategy, self.compression, self.level, self.jobs, self.threads_per_job, self.freeze_timeout
        );
        match &self.repository {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "target: repository {r}, one snapshot per container; run report in {}/<run>/",
                    self.target.display()
                );
            }
            None => {
                let _ = writeln!(s, "target: {}/<run>/", self.target.display());
            }
        }
        for v in &self.volumes {
            let _ = writeln!(
                s,
                "volume {} ({}, {:?} snapshots in {}):",
                v.volume.name,
                v.volume.path.display(),
                v.volume.provider,
                v.volume.snapshot_dir.display()
            );
            if self.keeps_base(&v.volume) {
                let _ = writeln!(
                    s,
                    "  each snapshot is kept as the base of the next run once its containers are saved (the old base removed); changed files are read only around what the kernel says changed since the base"
                );
            }
            let windows: Vec<Vec<&Container>> = match self.strategy {
                Strategy::Group => vec![v.containers.iter().collect()],
                Strategy::Each => v.containers.iter().map(|c| vec![c]).collect(),
            };
            for (i, w) in windows.iter().enumerate() {
                let ids: Vec<String> = w.iter().map(|c| c.id.to_string()).collect();
                let _ = writeln!(
                    s,
                    "  window {}: sync; freeze {}; snapshot; thaw; then archive each from the snapshot",
                    i + 1,
                    ids.join(", ")
                );
            }
            for c in &v.containers {
                for m in self.mounts.get(c.id.as_str()).into_iter().flatten() {
                    let _ = writeln!(s, "  warning: {}: {}", c.id, m.warning());
                }
                let _ = writeln!(
                    s,
                    "  {} ({}{}{}): {} -> {}.{}{}",
                    c.id,
                    c.runtime,
                    c.cgroup
                        .as_ref()
                        .map(|g| format!(", cgroup {}", g.display()))
                        .unwrap_or_default(),
                    if c.running {
                        ""
                    } else {
                        ", stopped: archived from the live tree, unfrozen"
                    },
                    c.private.display(),
                    c.id,
                    self.compression.extension(),
                    c.config
                        .as_ref()
                        .map(|p| format!(" + {} -> {}.conf", p.display(), c.id))
                        .unwrap_or_default()
                );
                if !c.exclude.is_empty() {
                    let _ = writeln!(s, "    excluding: {}", c.exclude.join(" "));
                }
            }
        }
        if let Some(t) = self.throttle.describe() {
            let _ = writeln!(s, "{t}");
        }
        s
    }
}

/// The plan cannot be made; nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The request itself is wrong.
    #[error("{0}")]
    Usage(String),
    /// A container id is not in the config.
    #[error("unknown container `{id}`: configured are {known} (see `freezeframe show-config`)")]
    UnknownContainer {
        /// The id asked for.
        id: String,
        /// The ids that exist.
        known: String,
    },
    /// The private area is missing.
    #[error("container {id}: private dir {path} {problem} (check `private` in its config)")]
    PrivateMissing {
        /// Container id.
        id: String,
        /// The path.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The runtime cannot back this container up.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The volume cannot be snapshotted.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The target is unusable.
    #[error(transparent)]
    Target(#[from] StoreError),
    /// No runtime or provider for a configured kind.
    #[error("{0}")]
    Missing(String),
    /// The state dir cannot hold the journal and the lock.
    #[error("state_dir {path}: {source} (check state_dir in the config)")]
    StateDir {
        /// The state dir.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl PlanError {
    /// Whether the operator's input (arguments, config) is at fault, as
    /// opposed to the state of the system.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            PlanError::Usage(_) | PlanError::UnknownContainer { .. }
        ) || matches!(self, PlanError::Runtime(RuntimeError::Unsupported { .. }))
    }
}

/// Most archive workers per core: archiving is mostly CPU-bound
/// (compression), with some waiting on reads.
const JOBS_PER_CORE: usize = 4;

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Makes the plan and runs every check that does not change anything.
pub fn plan(config: &Config, req: &BackupRequest, tools: &Toolbox) -> Result<Plan, PlanError> {
    let selected = select(config, req)?;
    crate::config::Excludes::new(&req.exclude)
        .map_err(|e| PlanError::Usage(format!("--exclude: {e}")))?;
    let mode = req.mode.unwrap_or(config.backup.mode);
    let strategy = req.strategy.unwrap_or(config.backup.strategy);
    let (compression, level) = compression(config, req)?;
    let (jobs, threads_per_job) = jobs(config, req, selected.len())?;
    // Unreadable: no mounts are known, none is warned about.
    let table = crate::sys::mountinfo::read(&tools.mountinfo).unwrap_or_default();
    let mut mounts = BTreeMap::new();
    let mut volumes: Vec<VolumePlan> = Vec::new();
    for spec in &selected {
        let (mut c, vol) = resolve(config, spec, mode, tools)?;
        c.exclude = spec.exclude.iter().chain(&req.exclude).cloned().collect();
        let inside = inner_mounts(&table, &c, vol);
        if !inside.is_empty() {
            mounts.insert(c.id.to_string(), inside);
        }
        match volumes.iter_mut().find(|v| v.volume.name == vol.name) {
            Some(v) => v.containers.push(c),
            None => volumes.push(VolumePlan {
                volume: vol.clone(),
                containers: vec![c],
            }),
        }
    }
    check_volumes(&volumes, strategy, jobs, tools)?;
    check_places(config, req.dry_run)?;
    let paths: Vec<&std::path::Path> = volumes.iter().map(|v| v.volume.path.as_path()).collect();
    // This process's cgroup file sits beside its mountinfo (`/proc/self/`).
    let cgroup_file = tools.mountinfo.with_file_name("cgroup");
    let throttle =
        super::throttle::plan_throttle(config, &paths, &table, &tools.sysfs, &cgroup_file)?;
    Ok(Plan {
        mode,
        strategy,
        compression,
        level,
        jobs,
        threads_per_job,
        freeze_timeout: config.freeze_timeout(),
        target: config.target.path().to_owned(),
        repository: config
            .target
            .repository()
            .as_ref()
            .map(|r| r.location.describe()),
        state_dir: Some(config.state_dir.clone()),
        volumes,
        mounts,
        throttle,
    })
}

/// The containers asked for, each once, in the order named.
fn select<'c>(
    config: &'c Config,
    req: &BackupRequest,
) -> Result<Vec<&'c ContainerSpec>, PlanError> {
    if req.all && !req.ids.is_empty() {
        return Err(PlanError::Usage(
            "give container ids or --all, not both".into(),
        ));
    }
    if !req.all && req.ids.is_empty() {
        return Err(PlanError::Usage(
            "name the containers to back up, or pass --all".into(),
        ));
    }
    let known = || match config.containers.is_empty() {
        true => "none".to_owned(),
        false => config
            .containers
            .iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut selected: Vec<&ContainerSpec> = Vec::new();
    if req.all {
        selected = config.containers.iter().collect();
    }
    for id in &req.ids {
        let c = config
            .container(id)
            .ok_or_else(|| PlanError::UnknownContainer {
                id: id.clone(),
                known: known(),
            })?;
        if !selected.iter().any(|x| x.id == c.id) {
            selected.push(c);
        }
    }
    if selected.is_empty() {
        return Err(PlanError::Usage(
            "no containers are configured: add [[container]] tables to the config".into(),
        ));
    }
    Ok(selected)
}

/// The compressor and its level: the command line's, else the config's; a
/// compressor changed on the command line gets its own default level.
fn compression(config: &Config, req: &BackupRequest) -> Result<(Compression, i32), PlanError> {
    let compression = req.compress.unwrap_or(config.backup.compress);
    let level = match (req.level, req.compress) {
        (Some(l), _) => l,
        (None, Some(c)) if c != config.backup.compress => c.default_level(),
        (None, _) => config.backup.level.unwrap_or(compression.default_level()),
    };
    compression
        .check_level(level)
        .map_err(|m| PlanError::Usage(format!("--level: {m}")))?;
    Ok((compression, level))
}

/// How many containers are archived at once, and the compressor threads of
/// each: asked for (1 to [`MAX_JOBS`]) or half the cores, never more than
/// the containers nor than the cores can keep busy.
fn jobs(
    config: &Config,
    req: &BackupRequest,
    containers: usize,
) -> Result<(usize, usize), PlanError> {
    let cores = cores();
    let asked = match req.jobs.or(Some(config.backup.jobs).filter(|&j| j > 0)) {
        Some(j) if !(1..=MAX_JOBS).contains(&j) => {
            return Err(PlanError::Usage(format!(
                "--jobs {j} is out of range: allowed 1 to {MAX_JOBS} containers archived at once"
            )))
        }
        Some(j) => j,
        None => (cores / 2).max(1),
    };
    let jobs = asked.min(containers).min(cores * JOBS_PER_CORE).max(1);
    Ok((jobs, (cores / jobs).max(1)))
}

/// A configured container as its runtime sees it, with its volume: the
/// runtime supports the mode, the private area is a folder inside a
/// volume, and a running container can be brought to rest.
fn resolve<'c>(
    config: &'c Config,
    spec: &ContainerSpec,
    mode: Mode,
    tools: &Toolbox,
) -> Result<(Container, &'c Volume), PlanError> {
    let runtime = tools
        .runtime(spec.runtime)
        .ok_or_else(|| PlanError::Missing(format!("no {} runtime available", spec.runtime)))?;
    if !runtime.supports(mode) {
        return Err(RuntimeError::Unsupported {
            id: spec.id.to_string(),
            runtime: spec.runtime,
            mode,
        }
        .into());
    }
    // The runtime fills in what the config left out.
    let r = runtime.resolve(spec)?;
    let missing = |problem: String| PlanError::PrivateMissing {
        id: spec.id.to_string(),
        path: r.private.clone(),
        problem,
    };
    let vol = config
        .volume_for(&r.private, spec.volume.as_deref())
        .ok_or_else(|| {
            missing(
                "is not inside any [[volume]] path: add a [[volume]] whose path holds it".into(),
            )
        })?;
    match std::fs::metadata(&r.private) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(missing("is not a directory".into())),
        Err(e) => return Err(missing(format!("cannot be read: {e}"))),
    }
    let c = Container {
        id: spec.id.clone(),
        runtime: spec.runtime,
        cgroup: spec.cgroup.clone(),
        private: r.private,
        volume: vol.name.clone(),
        config: r.config,
        running: r.running,
        exclude: Vec::new(),
    };
    if c.running {
        runtime.check(&c)?;
    }
    Ok((c, vol))
}

/// Each volume can hold the snapshots alive at once: one per volume
/// (group), or one per container being archived plus the next window's
/// (each).
fn check_volumes(
    volumes: &[VolumePlan],
    strategy: Strategy,
    jobs: usize,
    tools: &Toolbox,
) -> Result<(), PlanError> {
    for v in volumes {
        let p = tools.provider(v.volume.provider).ok_or_else(|| {
            PlanError::Missing(format!(
                "no {:?} snapshot provider available",
                v.volume.provider
            ))
        })?;
        let live = match strategy {
            Strategy::Group => 1,
            Strategy::Each => v.containers.len().min(jobs + 1),
        };
        p.check(&v.volume, live)?;
    }
    Ok(())
}

/// The target and the state dir can be written (a dry run checks what the
/// real run would refuse, writing nothing).
fn check_places(config: &Config, dry_run: bool) -> Result<(), PlanError> {
    let store = Store::new(config.target.path());
    if dry_run {
        store.check_usable()?;
    } else {
        store.check_writable()?;
    }
    crate::sys::fs::check_dir_usable(&config.state_dir).map_err(|source| PlanError::StateDir {
        path: config.state_dir.clone(),
        source,
    })
}

/// The mounts on or inside `c`'s private area, except the volume's own
/// mount when the private area is the whole volume.
fn inner_mounts(table: &[MountEntry], c: &Container, vol: &Volume) -> Vec<MountRecord> {
    mounts_inside(table, &c.private)
        .into_iter()
        .filter(|m| m.mount_point != vol.path)
        .map(|m| MountRecord {
            path: match m.mount_point.strip_prefix(&c.private) {
                Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
                Ok(rel) => escape_path(rel),
                Err(_) => escape_path(&m.mount_point),
            },
            fs_type: escape(m.fs_type.as_bytes()),
            source: escape(m.source.as_bytes()),
        })
        .collect()
}
