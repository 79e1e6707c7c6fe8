//! The guardian: a small process (this binary, `freezeframe guardian`)
//! started before the first freeze, in its own process group, reading a pipe
//! from the backup process. The backup announces each freeze window and its
//! deadline. If the window overruns, the guardian thaws what the journal
//! lists as frozen; if the pipe closes without a `done` (the backup died,
//! even by SIGKILL), it thaws at once, then removes the run's snapshots and
//! incomplete run folder. It logs what it does and exits when done.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::RecvTimeoutError;
use freezeframe::config::Config;
use freezeframe::engine::{recover, thaw_now, RecoverReport, Scope, Watchdog};
use freezeframe::sys::process;

/// The backup's end of the guardian.
pub struct Guardian {
    child: Mutex<Child>,
    pipe: Mutex<Option<ChildStdin>>,
}

impl Guardian {
    /// Starts the guardian of this process.
    pub fn spawn(config_path: &Path) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("--config")
            .arg(config_path)
            .arg("guardian")
            .arg("--parent")
            .arg(std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .env_remove(freezeframe::sys::faults::FAULT_ENV);
        // Its own process group: a Ctrl-C aimed at the backup must not stop it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn()?;
        let pipe = child.stdin.take();
        Ok(Self {
            child: Mutex::new(child),
            pipe: Mutex::new(pipe),
        })
    }

    fn send(&self, line: &str) -> Result<(), String> {
        let mut g = self.pipe.lock().unwrap_or_else(|p| p.into_inner());
        let p = g.as_mut().ok_or("the guardian was already told to stop")?;
        p.write_all(line.as_bytes())
            .and_then(|_| p.flush())
            .map_err(|e| format!("guardian pipe: {e}"))
    }

    /// Tells the guardian the run ended cleanly and waits for it.
    pub fn finish(&self) {
        let _ = self.send("done\n");
        self.pipe.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.child.lock().unwrap_or_else(|p| p.into_inner()).wait();
    }
}

impl Watchdog for Guardian {
    fn window_open(&self, timeout: Duration) -> Result<(), String> {
        self.send(&format!("open {}\n", timeout.as_millis()))
    }
    fn window_closed(&self) {
        let _ = self.send("close\n");
    }
}

fn log(msg: &str) {
    crate::output::note(format_args!("freezeframe guardian: {msg}"));
}

fn log_report(r: &RecoverReport) {
    for a in &r.actions {
        log(a);
    }
    for f in &r.failures {
        log(&format!("FAILED: {f}"));
    }
}

/// The guardian process: watches `parent` until it says `done`.
pub fn run(config: &Config, parent: u32) -> Result<u8> {
    let tools = crate::system::toolbox(config);
    let parent_start = process::start_time(parent);
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // Dropping `tx` tells the loop the pipe closed.
    });
    let mut deadline: Option<(Instant, Duration)> = None;
    loop {
        let msg = match deadline {
            Some((at, _)) => rx.recv_deadline(at),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(line) => match line.split_once(' ').unwrap_or((line.as_str(), "")) {
                ("open", ms) => {
                    let t = Duration::from_millis(ms.trim().parse().unwrap_or(10_000));
                    deadline = Some((Instant::now() + t, t));
                }
                ("close", _) => deadline = None,
                ("done", _) => return Ok(crate::exit::OK),
                _ => log(&format!("ignoring unknown message `{line}`")),
            },
            Err(RecvTimeoutError::Timeout) => {
                let t = deadline.map(|d| d.1).unwrap_or_default();
                log(&format!("freeze deadline of {t:?} passed: thawing"));
                match thaw_now(&config.state_dir, &tools, Scope::Owner(parent)) {
                    Ok(r) => log_report(&r),
                    Err(e) => log(&format!("FAILED to read the journal: {e}")),
                }
                deadline = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                log(&format!(
                    "backup process {parent} ended without finishing: undoing what it left"
                ));
                // Thaw first: that is what cannot wait.
                match thaw_now(&config.state_dir, &tools, Scope::Owner(parent)) {
                    Ok(r) => log_report(&r),
                    Err(e) => log(&format!("FAILED to read the journal: {e}")),
                }
                // Then wait until the process is really gone before removing
                // snapshots it might still be reading.
                let until = Instant::now() + Duration::from_secs(30);
                while parent_start.is_some_and(|s| process::alive(parent, s))
                    && Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                match recover(&config.state_dir, &tools, &[], Scope::Owner(parent)) {
                    Ok(r) => log_report(&r),
                    Err(e) => log(&format!("FAILED to read the journal: {e}")),
                }
                return Ok(crate::exit::OK);
            }
        }
    }
}
