//! `freezeframe restore`.

use anyhow::Result;
use freezeframe::{
    BrowsePath, Cancel, Config, Faults, HostLock, RepoError, RestoreError, RestoreRequest,
    StoreError, TargetError,
};

use crate::cli::RestoreArgs;
use crate::exit::{self, UsageError};
use crate::output::size;

/// Restores one container (or some of its paths) into a folder.
pub fn run(config: &Config, args: &RestoreArgs) -> Result<u8> {
    if let Some(new_id) = &args.new_id {
        return super::restore_as::run(config, args, new_id);
    }
    let Some(to) = &args.to else {
        return Err(UsageError("restore needs --to DIR (or --as NEWID)".into()).into());
    };
    // Absolute: `<to>.conf` and `<to>.dump` go beside it, whatever the
    // working directory does meanwhile.
    let to =
        std::path::absolute(to).map_err(|e| UsageError(format!("--to {}: {e}", to.display())))?;
    let include = args
        .include
        .iter()
        .map(|p| BrowsePath::parse(p).map_err(|e| UsageError(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let req = RestoreRequest {
        id: args.id.clone(),
        run: args.run.clone(),
        to: to.clone(),
        force: args.force,
        include,
    };
    let Started {
        cancel,
        faults,
        _lock,
    } = start(config, args)?;
    let target = crate::system::target(config)?;
    let r = match target.restore(&req, &faults, &cancel) {
        Err(e) if cancel.signal().is_some() => {
            let sig = cancel.signal().unwrap_or(2);
            crate::output::note(format_args!("freezeframe: restore interrupted by signal {sig}: {e}; what was written stays inside {}", to.display()));
            return Ok(exit::signal(sig));
        }
        Err(e) if config.container(&args.id).is_none() && nothing_found(&e) => {
            return Err(UsageError(format!(
                "unknown container `{}`: it is not configured and the target holds no backup of it (see `freezeframe list`)",
                args.id
            ))
            .into())
        }
        r => r?,
    };
    println!(
        "restored {} from run {} into {}: {} entries, {}",
        args.id,
        r.run,
        to.display(),
        r.extract.entries,
        size(r.extract.bytes)
    );
    warn_partial(&r.run, r.partial.as_deref());
    if let Some(c) = &r.config {
        println!("config written to {}", c.display());
    }
    if let Some(d) = &r.dump {
        println!("memory dump written to {}", d.display());
    }
    if args.with_memory {
        let Some(d) = &r.dump else {
            return Err(UsageError(format!(
                "--with-memory: run {} holds no memory dump of {}",
                r.run, args.id
            ))
            .into());
        };
        let kind = config
            .container(&args.id)
            .map(|c| c.runtime)
            .ok_or_else(|| {
                UsageError(format!(
                    "--with-memory: container {} is not configured, so its runtime is unknown",
                    args.id
                ))
            })?;
        let tools = crate::system::toolbox(config);
        let rt = tools
            .runtime(kind)
            .ok_or_else(|| anyhow::anyhow!("no {kind} runtime"))?;
        let how = rt.restore_memory(&args.id, d)?;
        println!(
            "container {} restored from its memory dump ({how})",
            args.id
        );
    }
    for w in &r.extract.warnings {
        crate::output::note(format_args!("warning: {w}"));
    }
    Ok(if r.extract.warnings.is_empty() && r.partial.is_none() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

/// Whether a restore failed because nothing of the container was found.
fn nothing_found(e: &TargetError) -> bool {
    matches!(
        e,
        TargetError::Store(StoreError::NoBackup { .. })
            | TargetError::Repository(RepoError::NotFound { .. })
            | TargetError::Restore(RestoreError::Store(StoreError::NoBackup { .. }))
            | TargetError::Restore(RestoreError::Repository(RepoError::NotFound { .. }))
    )
}

/// What every restore holds while it runs: signals turned into a cancel,
/// the fault points, the host lock.
pub(super) struct Started {
    pub cancel: Cancel,
    pub faults: Faults,
    pub _lock: HostLock,
}

/// Installs the signal handlers, reads the fault points and takes the host
/// lock (waiting `--lock-wait`).
pub(super) fn start(config: &Config, args: &RestoreArgs) -> Result<Started> {
    let cancel = crate::signals::install()?;
    // The extractor stops at the next entry; this bounds one huge entry.
    crate::signals::exit_after(&cancel, std::time::Duration::from_secs(1), "restore");
    let faults = Faults::from_env().map_err(|e| UsageError(e.to_string()))?;
    let (lock, takeover) =
        HostLock::acquire(&config.state_dir, "restore", args.lock_wait.0, &cancel)?;
    if let Some(w) = takeover {
        crate::output::warn(w);
    }
    Ok(Started {
        cancel,
        faults,
        _lock: lock,
    })
}

/// Says that the backup of `run` is partial, and what it misses.
pub(super) fn warn_partial(run: &str, missing: Option<&[String]>) {
    let Some(missing) = missing else { return };
    crate::output::note(format_args!(
        "freezeframe: warning: the backup in run {run} is partial: what could not be read when it was taken is missing or zero-filled:"
    ));
    for m in missing {
        crate::output::note(format_args!("  {m}"));
    }
}
