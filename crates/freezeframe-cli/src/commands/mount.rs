//! `freezeframe mount` and `freezeframe umount`. In the background (the
//! default) the command starts itself again with `--foreground` in a
//! process group of its own, waits until that process says the mount is
//! in place (a `ready` line on its stdout) or has failed (its stderr),
//! and returns. The serving process records its mount in the state dir
//! before mounting, so that `recover` or `umount` can remove a mount
//! whose process was killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use freezeframe::{read_mount_table, served_mounts, Config, Mounts, SystemRunner};

use crate::cli::{MountArgs, UmountArgs};
use crate::exit::{self, UsageError};
use crate::mount::MountOptions;

/// Set in the serving process's environment by the starting one: say
/// `ready` on stdout once mounted.
const NOTIFY_ENV: &str = "FREEZEFRAME_MOUNT_NOTIFY";
const READY: &str = "ready";

/// The folder's absolute path without following its last component (a
/// dead FUSE mount cannot be looked at).
fn absolute(p: &Path) -> Result<PathBuf> {
    let name = p
        .file_name()
        .ok_or_else(|| UsageError(format!("{} names no folder", p.display())))?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .map_err(|e| UsageError(format!("{}: {e}", parent.display())))?;
    Ok(parent.join(name))
}

/// Mounts the target's backups at `args.mount_point`.
pub fn run(config: &Config, args: &MountArgs, config_path: &Path) -> Result<u8> {
    let at = absolute(&args.mount_point)?;
    let table = read_mount_table().context("reading the mount table")?;
    if served_mounts::is_ours(&table, &at) {
        return Err(UsageError(format!(
            "{} is already a freezeframe mount (`freezeframe umount {0}` first)",
            at.display()
        ))
        .into());
    }
    if !at.is_dir() {
        return Err(UsageError(format!("{}: not a folder; create it first", at.display())).into());
    }
    if !args.foreground {
        return start_in_background(args, &at, config_path);
    }
    let cancel = crate::signals::install()?;
    let target = crate::system::target(config)?;
    let mounts = Mounts::new(&config.state_dir);
    let record = mounts.record(&at)?;
    let notify = std::env::var_os(NOTIFY_ENV).is_some();
    let served = crate::mount::serve(
        target,
        &at,
        MountOptions {
            allow_other: args.allow_other,
        },
        &cancel,
        || {
            if notify {
                let mut out = std::io::stdout();
                writeln!(out, "{READY}")?;
                out.flush()?;
                detach_output()?;
            } else {
                crate::output::note(format_args!(
                    "freezeframe: mounted at {}; Ctrl-C or `freezeframe umount {0}` unmounts",
                    at.display()
                ));
            }
            Ok(())
        },
    );
    mounts.forget(&record)?;
    served?;
    Ok(exit::OK)
}

/// Points stdout and stderr at /dev/null: the starting process has read
/// what it waited for and is gone; nothing may write into its pipes.
fn detach_output() -> Result<()> {
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)?;
    Ok(())
}

fn start_in_background(args: &MountArgs, at: &Path, config_path: &Path) -> Result<u8> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("finding this program")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(config_path)
        .arg("mount")
        .arg("--foreground")
        .arg(at)
        .env(NOTIFY_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if args.allow_other {
        cmd.arg("--allow-other");
    }
    let mut child = cmd.spawn().context("starting the mount process")?;
    let mut err_pipe = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = &mut err_pipe {
            // Up to the first lines: the process keeps its stderr after.
            let _ = e.take(64 << 10).read_to_string(&mut s);
        }
        s
    });
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() == READY {
        println!(
            "mounted at {} (process {}); `freezeframe umount {0}` unmounts",
            at.display(),
            child.id()
        );
        return Ok(exit::OK);
    }
    let status = child.wait()?;
    let text = errors.join().unwrap_or_default();
    let text = text.trim();
    let text = text.strip_prefix("freezeframe: ").unwrap_or(text);
    bail!(
        "the mount process ended ({status}){}",
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    )
}

/// Unmounts a freezeframe mount: a live one's process then exits; a
/// killed one's mount is detached and its record dropped.
pub fn umount(config: &Config, args: &UmountArgs) -> Result<u8> {
    let at = absolute(&args.mount_point)?;
    let table = read_mount_table().context("reading the mount table")?;
    let mounts = Mounts::new(&config.state_dir);
    let record = mounts.list().into_iter().find(|m| m.mount_point == at);
    let alive = record.as_ref().is_some_and(|m| m.alive());
    served_mounts::unmount(&SystemRunner, &table, &at, alive).map_err(|e| match e {
        freezeframe::MountsError::NotOurs(_) => anyhow::Error::new(UsageError(e.to_string())),
        e => e.into(),
    })?;
    if let Some(m) = record {
        // A live process removes its own record as it exits.
        let until = Instant::now() + Duration::from_secs(10);
        while m.alive() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !m.alive() {
            mounts.forget(&m)?;
        }
    }
    println!("unmounted {}", at.display());
    Ok(exit::OK)
}
