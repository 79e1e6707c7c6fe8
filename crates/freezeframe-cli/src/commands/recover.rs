//! `freezeframe recover`.

use anyhow::Result;
use freezeframe::{drop_unconfigured_bases, recover, Config, HostLock, RecoverReport, Scope};

use crate::cli::RecoverArgs;
use crate::exit;

/// Prints what reconciling did, to stderr.
pub fn report(r: &RecoverReport, when: &str) {
    for a in &r.actions {
        crate::output::note(format_args!("freezeframe: recovered ({when}): {a}"));
    }
    for n in &r.notes {
        crate::output::note(format_args!("freezeframe: note: {n}"));
    }
    for f in &r.failures {
        crate::output::note(format_args!("freezeframe: recovery FAILED: {f}"));
    }
}

/// Takes the host lock and undoes whatever interrupted runs left.
pub fn run(config: &Config, args: &RecoverArgs) -> Result<u8> {
    let cancel = crate::signals::install()?;
    let (_lock, takeover) =
        HostLock::acquire(&config.state_dir, "recover", args.lock_wait.0, &cancel)?;
    if let Some(w) = takeover {
        crate::output::warn(w);
    }
    let tools = crate::system::toolbox(config);
    let mut r = recover(&config.state_dir, &tools, &config.volumes, Scope::Dead)?;
    let b = drop_unconfigured_bases(&config.state_dir, &tools, config);
    r.actions.extend(b.actions);
    r.notes.extend(b.notes);
    r.failures.extend(b.failures);
    // What a killed drill left: its scratch folder.
    r.actions
        .extend(freezeframe::remove_stale_scratch(&config.drill.scratch_dir));
    // What a killed `freezeframe mount` left: its mount and record.
    let table = freezeframe::read_mount_table().unwrap_or_default();
    let swept = freezeframe::served_mounts::sweep(
        &freezeframe::Mounts::new(&config.state_dir),
        &freezeframe::SystemRunner,
        &table,
    );
    r.actions.extend(swept.actions);
    r.failures.extend(swept.failures);
    // What a killed run left in the target (a repository's lock files);
    // a target that cannot be opened now is no recovery failure.
    match crate::system::target(config).and_then(|t| Ok(t.recover()?)) {
        Ok(done) => r.actions.extend(done),
        Err(e) => r.notes.push(format!("the target was not checked: {e}")),
    }
    report(&r, "recover");
    if r.actions.is_empty() && r.failures.is_empty() {
        println!("nothing to recover");
    } else {
        println!(
            "{} action(s), {} failure(s)",
            r.actions.len(),
            r.failures.len()
        );
    }
    Ok(if r.failures.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    })
}
