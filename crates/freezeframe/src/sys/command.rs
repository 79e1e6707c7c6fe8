//! Running external programs: `LC_ALL=C`, stderr captured, the command line
//! carried in every error.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A command to run: program, arguments, extra environment and an optional
/// time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    timeout: Option<Duration>,
    stdin: Option<Vec<u8>>,
    cwd: Option<std::path::PathBuf>,
}

impl Cmd {
    /// A command running `program` (looked up in `PATH`).
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: None,
            stdin: None,
            cwd: None,
        }
    }

    /// Runs the command in the folder `dir`.
    pub fn cwd(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Gives the command `data` on its standard input (else it reads an
    /// empty stdin).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// What the command reads on stdin, if anything.
    pub fn input(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    /// Sets one environment variable for the command (on top of the
    /// inherited environment and `LC_ALL=C`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the command in a process group of its own and kills the whole
    /// group (what it started in the background too) after `limit`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
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

    /// The extra environment variables, in the order set.
    pub fn envs(&self) -> &[(String, OsString)] {
        &self.env
    }

    /// The time limit, if any.
    pub fn time_limit(&self) -> Option<Duration> {
        self.timeout
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .env("LC_ALL", "C")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }

    fn spawn_error(&self, source: std::io::Error) -> CommandError {
        CommandError::Spawn {
            cmdline: self.to_string(),
            program: self.program.clone(),
            source,
        }
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
    /// The program ran past its time limit and was killed with everything
    /// it started.
    #[error("`{cmdline}` was killed after its time limit of {limit:?}")]
    TimedOut {
        /// The full command line.
        cmdline: String,
        /// The limit it ran past.
        limit: Duration,
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
        let (status, stdout, stderr) = match cmd.timeout {
            // Input is written while the output is collected.
            None if cmd.stdin.is_some() => run_bounded(cmd, Duration::from_secs(24 * 3600))?,
            None => {
                // `output()` drains stdout and stderr concurrently, so a
                // chatty child cannot deadlock on a full pipe.
                let out = cmd.command().output().map_err(|e| cmd.spawn_error(e))?;
                (out.status, out.stdout, out.stderr)
            }
            Some(limit) => run_bounded(cmd, limit)?,
        };
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
        if !status.success() {
            return Err(CommandError::Failed {
                cmdline: cmd.to_string(),
                status: status.to_string(),
                stderr,
            });
        }
        Ok(CommandOutput { stdout, stderr })
    }
}

/// How much of a bounded command's stdout and stderr is kept, each: a hook
/// that prints without end must not fill memory.
const KEEP_OUTPUT: usize = 1 << 20;

/// How long output is still collected after the command exited: something
/// it left running in the background may hold the pipes open for ever.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Runs `cmd` in its own process group; past `limit` the group is killed.
fn run_bounded(cmd: &Cmd, limit: Duration) -> Result<(ExitStatus, Vec<u8>, Vec<u8>), CommandError> {
    let mut c = cmd.command();
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let mut child = c.spawn().map_err(|e| cmd.spawn_error(e))?;
    if let (Some(mut pipe), Some(data)) = (child.stdin.take(), cmd.stdin.clone()) {
        // A program that exits without reading all of it is its own
        // business: its exit status says whether it worked.
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut pipe, &data);
        });
    }
    let out = Collector::start(child.stdout.take());
    let err = Collector::start(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                return Err(CommandError::TimedOut {
                    cmdline: cmd.to_string(),
                    limit,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                kill_group(&mut child);
                return Err(cmd.spawn_error(e));
            }
        }
    };
    let grace = Instant::now() + OUTPUT_GRACE;
    Ok((status, out.finish(grace), err.finish(grace)))
}

fn kill_group(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.wait();
}

/// Reads a pipe on a thread of its own, keeping the first
/// [`KEEP_OUTPUT`] bytes and draining the rest.
struct Collector {
    kept: Arc<Mutex<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let thread = pipe.map(|mut pipe| {
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
                    let room = KEEP_OUTPUT.saturating_sub(k.len()).min(n);
                    k.extend_from_slice(&buf[..room]);
                }
            })
        });
        Self { kept, thread }
    }

    /// What was read by `grace` (or by the end of the output, if sooner).
    fn finish(mut self, grace: Instant) -> Vec<u8> {
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()))
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
    fn stdin_is_given_to_the_command() {
        let big = "x".repeat(1 << 20) + "\nend\n";
        let out = SystemRunner
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg("wc -c; tail -n1")
                    .stdin(big.clone()),
            )
            .unwrap();
        assert_eq!(out.stdout, format!("{}\n", big.len()));
        let out = SystemRunner
            .run(&Cmd::new("cat").stdin("a\n").timeout(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(out.stdout, "a\n");
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
    fn environment_is_passed() {
        let out = SystemRunner
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg("echo \"$A-$B\"")
                    .env("A", "1")
                    .env("B", "two words"),
            )
            .unwrap();
        assert_eq!(out.stdout, "1-two words\n");
    }

    #[test]
    fn bounded_command_output_and_failure() {
        let limit = Duration::from_secs(20);
        let out = SystemRunner
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg("echo out; echo err >&2")
                    .timeout(limit),
            )
            .unwrap();
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err"));
        let e = SystemRunner
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg("echo bad >&2; exit 4")
                    .timeout(limit),
            )
            .unwrap_err();
        assert!(
            matches!(&e, CommandError::Failed { status, stderr, .. }
            if status.contains('4') && stderr == "bad"),
            "{e}"
        );
    }

    #[test]
    fn time_limit_kills_the_whole_group() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("bg");
        let script = format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display());
        let t = Instant::now();
        let e = SystemRunner
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg(script)
                    .timeout(Duration::from_millis(300)),
            )
            .unwrap_err();
        assert!(matches!(e, CommandError::TimedOut { .. }), "{e}");
        assert!(e.to_string().contains("time limit"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
        // The background child was killed too (it is reaped by init, so
        // wait for it to disappear).
        let bg: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..500).any(|_| {
            let alive = std::fs::read_to_string(format!("/proc/{bg}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false);
            if alive {
                std::thread::sleep(Duration::from_millis(10));
            }
            !alive
        });
        assert!(gone, "background child {bg} survived the time limit");
    }

    #[test]
    fn background_child_holding_the_pipe_does_not_hold_the_command() {
        let t = Instant::now();
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("bg");
        let script = format!("sleep 5 & echo $! > {}; echo started", pidfile.display());
        let out = SystemRunner
            .run(
                &Cmd::new("sh")
                    .arg("-c")
                    .arg(script)
                    .timeout(Duration::from_secs(20)),
            )
            .unwrap();
        assert!(out.stdout.starts_with("started"), "{out:?}");
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        let bg: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if let Some(pid) = rustix::process::Pid::from_raw(bg) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
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
