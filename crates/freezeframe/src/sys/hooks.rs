//! Hooks: operator commands run at each phase of a job (like vzdump's
//! `--script`), with the phase, container, run and result in the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::command::{Cmd, CommandError, CommandRunner};

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

/// A hook did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// It could not be started.
    #[error("{phase} hook `{command}` could not start: {source}")]
    Start {
        /// The phase.
        phase: HookPhase,
        /// The configured command.
        command: String,
        /// Why.
        source: CommandError,
    },
    /// It exited unsuccessfully.
    #[error("{phase} hook `{command}` failed ({status}){}", stderr_tail(.stderr))]
    Failed {
        /// The phase.
        phase: HookPhase,
        /// The configured command.
        command: String,
        /// Its exit status as text.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// It ran past `hooks.timeout` and was killed with its children.
    #[error("{phase} hook `{command}` was killed after the hook timeout of {limit:?}")]
    TimedOut {
        /// The phase.
        phase: HookPhase,
        /// The configured command.
        command: String,
        /// The timeout.
        limit: Duration,
    },
}

fn stderr_tail(stderr: &str) -> String {
    match stderr.lines().last() {
        Some(l) if !l.is_empty() => format!(": {l}"),
        _ => String::new(),
    }
}

/// Runs hooks.
pub trait Hooks: Send + Sync {
    /// Runs the hook of `phase`, if one is configured.
    fn run(&self, phase: HookPhase, env: &HookEnv) -> Result<(), HookError>;
}

/// No hooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;
impl Hooks for NoHooks {
    fn run(&self, _: HookPhase, _: &HookEnv) -> Result<(), HookError> {
        Ok(())
    }
}

/// Hooks as `sh -c` commands run through a [`CommandRunner`], each in its
/// own process group, killed (the whole group) when it runs longer than
/// `timeout`. What a hook prints is logged.
#[derive(Clone)]
pub struct ShellHooks {
    runner: Arc<dyn CommandRunner>,
    commands: BTreeMap<HookPhase, String>,
    timeout: Duration,
}

impl ShellHooks {
    /// Hooks from the config, run by `runner`.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        commands: BTreeMap<HookPhase, String>,
        timeout: Duration,
    ) -> Self {
        Self {
            runner,
            commands,
            timeout,
        }
    }
}

impl Hooks for ShellHooks {
    fn run(&self, phase: HookPhase, env: &HookEnv) -> Result<(), HookError> {
        let Some(command) = self.commands.get(&phase) else {
            return Ok(());
        };
        let mut c = Cmd::new("sh")
            .arg("-c")
            .arg(command)
            .env("FF_PHASE", phase.to_string())
            .env("FF_RUN", &env.run)
            .env("FF_RUN_DIR", &env.run_dir)
            .timeout(self.timeout);
        if let Some(ct) = &env.container {
            c = c.env("FF_CONTAINER", ct);
        }
        if let Some(r) = &env.result {
            c = c.env("FF_RESULT", r);
        }
        let command = command.clone();
        match self.runner.run(&c) {
            Ok(out) => {
                for line in out.stdout.lines().chain(out.stderr.lines()) {
                    tracing::info!(%phase, hook = %command, "{line}");
                }
                Ok(())
            }
            Err(CommandError::Failed { status, stderr, .. }) => Err(HookError::Failed {
                phase,
                command,
                status,
                stderr,
            }),
            Err(CommandError::TimedOut { limit, .. }) => Err(HookError::TimedOut {
                phase,
                command,
                limit,
            }),
            Err(source) => Err(HookError::Start {
                phase,
                command,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::SystemRunner;
    use std::time::Instant;

    fn hooks(phase: HookPhase, cmd: &str, timeout_ms: u64) -> ShellHooks {
        ShellHooks::new(
            Arc::new(SystemRunner),
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
        let e = hooks(HookPhase::JobStart, "echo no disk >&2; exit 3", 5000)
            .run(HookPhase::JobStart, &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("job-start hook") && e.contains("3"), "{e}");
        assert!(e.ends_with(": no disk"), "{e}");
    }

    #[test]
    fn hanging_hook_is_killed_with_its_children() {
        let t = Instant::now();
        let e = hooks(HookPhase::Finally, "sleep 30 & sleep 30", 200)
            .run(HookPhase::Finally, &HookEnv::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("killed after the hook timeout"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
