//! Hooks: operator commands run at each phase of a job (like vzdump's
//! `--script`), with the phase, container, run and result in the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The phases a hook can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPhase {
    /// The run starts (before anything is frozen). Failure aborts the run.
    JobStart,
    /// A container's backup starts. Failure fails that container.
    BackupStart,
    /// Just before a container is frozen. Failure fails that container, unfrozen.
    PreFreeze,
    /// Just after a container is thawed.
    PostThaw,
    /// A container's backup succeeded (ok or partial).
    BackupEnd,
    /// A container's backup failed.
    BackupFailed,
    /// The run ended with every container good.
    JobEnd,
    /// The run ended with a failure or was interrupted.
    JobFailed,
    /// Always last, whatever happened.
    Finally,
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// What a hook is told.
#[derive(Debug, Clone, Default)]
pub struct HookEnv {
    /// `FF_CONTAINER`.
    pub container: Option<String>,
    /// `FF_RUN`.
    pub run: String,
    /// `FF_RUN_DIR`.
    pub run_dir: String,
    /// `FF_RESULT`.
    pub result: Option<String>,
}

/// Runs hooks.
pub trait Hooks: Send + Sync {
    /// Runs the hook of `phase`, if one is configured; `Err` says why it failed.
    fn run(&self, phase: HookPhase, env: &HookEnv) -> Result<(), String>;
}

/// No hooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;
impl Hooks for NoHooks {
    fn run(&self, _: HookPhase, _: &HookEnv) -> Result<(), String> {
        Ok(())
    }
}

/// Hooks as `sh -c` commands, each in its own process group, killed (the
/// whole group) when it runs longer than `timeout`.
#[derive(Debug, Clone)]
pub struct ShellHooks {
    commands: BTreeMap<HookPhase, String>,
    timeout: Duration,
}

impl ShellHooks {
    /// Hooks from the config.
    pub fn new(commands: BTreeMap<HookPhase, String>, timeout: Duration) -> Self {
        Self { commands, timeout }
    }
}

impl Hooks for ShellHooks {
    fn run(&self, phase: HookPhase, env: &HookEnv) -> Result<(), String> {
        let Some(cmd) = self.commands.get(&phase) else {
            return Ok(());
        };
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .env("LC_ALL", "C")
            .env("FF_PHASE", phase.to_string())
            .env("FF_RUN", &env.run)
            .env("FF_RUN_DIR", &env.run_dir)
            .stdin(Stdio::null());
        if let Some(ct) = &env.container {
            c.env("FF_CONTAINER", ct);
        }
        if let Some(r) = &env.result {
            c.env("FF_RESULT", r);
        }
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c
            .spawn()
            .map_err(|e| format!("{phase} hook `{cmd}` could not start: {e}"))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("{phase} hook `{cmd}` failed ({status})")),
                Ok(None) if Instant::now() >= deadline => {
                    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                        let _ =
                            rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    }
                    let _ = child.wait();
                    return Err(format!(
                        "{phase} hook `{cmd}` was killed after the hook timeout of {:?}",
                        self.timeout
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("{phase} hook `{cmd}`: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(phase: HookPhase, cmd: &str, timeout_ms: u64) -> ShellHooks {
        ShellHooks::new(
            [(phase, cmd.to_owned())].into(),
            Duration::from_millis(timeout_ms),
        )
    }

    #[test]
    fn environment_and_failures() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("env");
        let h = hooks(
            HookPhase::PreFreeze,
            &format!(
                "echo \"$FF_PHASE $FF_CONTAINER $FF_RUN $FF_RESULT\" > {}",
                out.display()
            ),
            5000,
        );
        let env = HookEnv {
            container: Some("101".into()),
            run: "r1".into(),
            run_dir: "/x".into(),
            result: Some("ok".into()),
        };
        h.run(HookPhase::PreFreeze, &env).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "pre-freeze 101 r1 ok\n"
        );
        h.run(HookPhase::PostThaw, &env).unwrap(); // none configured
        let e = hooks(HookPhase::JobStart, "exit 3", 5000)
            .run(HookPhase::JobStart, &env)
            .unwrap_err();
        assert!(e.contains("job-start hook") && e.contains("3"), "{e}");
    }

    #[test]
    fn hanging_hook_is_killed_with_its_children() {
        let t = Instant::now();
        let e = hooks(HookPhase::Finally, "sleep 30 & sleep 30", 200)
            .run(HookPhase::Finally, &HookEnv::default())
            .unwrap_err();
        assert!(e.contains("killed after the hook timeout"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
