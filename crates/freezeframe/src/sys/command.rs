//! Running external programs: `LC_ALL=C`, stderr captured, the command line
//! carried in every error.

use std::ffi::OsString;
use std::fmt;
use std::process::{Command, Stdio};

/// A command to run: program and arguments, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
}

impl Cmd {
    /// A command running `program` (looked up in `PATH`).
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                write!(f, " '{}'", a.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// What a command printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// A command could not be started, or it failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started at all.
    #[error("could not run `{cmdline}`: {source} (is `{program}` installed and in PATH?)")]
    Spawn {
        /// The full command line.
        cmdline: String,
        /// The program name.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{cmdline}` failed ({status}): {stderr}")]
    Failed {
        /// The full command line.
        cmdline: String,
        /// Exit status as text (`exit status: 1`, `signal: 9`).
        status: String,
        /// What the program wrote to stderr, trimmed.
        stderr: String,
    },
}

/// Runs external programs. The only way the library starts a process.
pub trait CommandRunner: Send + Sync {
    /// Runs `cmd` to completion; a non-zero exit is an error.
    fn run(&self, cmd: &Cmd) -> Result<CommandOutput, CommandError>;
}

/// Runs commands on this host with `LC_ALL=C` and no stdin.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<CommandOutput, CommandError> {
        tracing::debug!(command = %cmd, "running");
        // `output()` drains stdout and stderr concurrently, so a chatty child
        // cannot deadlock on a full pipe.
        let out = Command::new(&cmd.program)
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| CommandError::Spawn {
                cmdline: cmd.to_string(),
                program: cmd.program.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if !out.status.success() {
            return Err(CommandError::Failed {
                cmdline: cmd.to_string(),
                status: out.status.to_string(),
                stderr,
            });
        }
        Ok(CommandOutput { stdout, stderr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let c = Cmd::new("btrfs").arg("subvolume").arg("a b").arg("");
        assert_eq!(c.to_string(), "btrfs subvolume 'a b' ''");
    }

    #[test]
    fn failure_carries_command_line_and_stderr() {
        let err = SystemRunner
            .run(&Cmd::new("sh").arg("-c").arg("echo oops >&2; exit 3"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c 'echo oops >&2; exit 3'"), "{msg}");
        assert!(msg.contains("oops"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }

    #[test]
    fn runs_with_c_locale() {
        let out = SystemRunner
            .run(&Cmd::new("sh").arg("-c").arg("echo $LC_ALL"))
            .unwrap();
        assert_eq!(out.stdout.trim(), "C");
    }

    #[test]
    fn missing_program_says_so() {
        let err = SystemRunner
            .run(&Cmd::new("freezeframe-no-such-program"))
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("is `freezeframe-no-such-program` installed"));
    }
}
