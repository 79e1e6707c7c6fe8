//! The guardian: a small process (this binary, `freezeframe guardian`)
//! started before the first freeze, in its own process group, reading a pipe
//! from the backup process. The backup announces each freeze window and its
//! absolute deadline ([`protocol::Message`]). If the window overruns, or a
//! message cannot be read, the guardian thaws what the journal lists as
//! frozen; if the pipe closes without a `done` (the backup died, even by
//! SIGKILL), it thaws at once, then removes the run's snapshots and
//! incomplete run folder. It logs what it does and exits when done.
//!
//! It is given only what undoing needs — the state dir (its journal) and
//! where this host's runtimes live — never the config file, which may have
//! changed or gone since the backup read it.

pub mod protocol;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use crossbeam_channel::RecvTimeoutError;
use freezeframe::{recover, thaw_now, RecoverReport, Scope, Toolbox, Watchdog, WatchdogError};

use crate::cli::GuardianArgs;
use crate::system::{host_toolbox, HostPaths};
use protocol::{remaining, Message};

/// The backup's end of the guardian.
pub struct Guardian {
    child: Mutex<Child>,
    pipe: Mutex<Option<ChildStdin>>,
}

/// The arguments that give a guardian its state dir and host paths.
fn args(state_dir: &Path, paths: &HostPaths) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![
        "guardian".into(),
        "--parent".into(),
        std::process::id().to_string().into(),
        "--state-dir".into(),
        state_dir.into(),
        "--openvz-conf-dir".into(),
        paths.openvz_conf_dir.clone().into(),
        "--lxcpath".into(),
        paths.lxcpath.clone().into(),
    ];
    if let Some(p) = &paths.cgroups.v2 {
        a.extend(["--cgroup-v2".into(), p.into()]);
    }
    if let Some(p) = &paths.cgroups.v1_freezer {
        a.extend(["--cgroup-v1-freezer".into(), p.into()]);
    }
    a
}

impl Guardian {
    /// Starts the guardian of this process, journaling in `state_dir`.
    pub fn spawn(state_dir: &Path, paths: &HostPaths) -> std::io::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(args(state_dir, paths))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .env_remove(freezeframe::FAULT_ENV);
        // Its own process group: a Ctrl-C aimed at the backup must not stop it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn()?;
        let pipe = child.stdin.take();
        Ok(Self {
            child: Mutex::new(child),
            pipe: Mutex::new(pipe),
        })
    }

    fn send(&self, m: Message) -> Result<(), WatchdogError> {
        let mut g = self.pipe.lock().unwrap_or_else(|p| p.into_inner());
        let p = g.as_mut().ok_or(WatchdogError::Finished)?;
        p.write_all(m.encode().as_bytes())
            .and_then(|_| p.flush())
            .map_err(WatchdogError::Gone)
    }

    /// Tells the guardian the run ended cleanly and waits for it.
    pub fn finish(&self) {
        let _ = self.send(Message::Done);
        self.pipe.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.child.lock().unwrap_or_else(|p| p.into_inner()).wait();
    }
}

impl Watchdog for Guardian {
    fn window_open(&self, deadline: SystemTime) -> Result<(), WatchdogError> {
        self.send(Message::open(deadline))
    }
    fn window_closed(&self) {
        let _ = self.send(Message::Close);
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

/// What the guardian watches, and with what it undoes.
struct Watched {
    parent: u32,
    state_dir: PathBuf,
    tools: Toolbox,
}

impl Watched {
    fn thaw(&self) {
        match thaw_now(&self.state_dir, &self.tools, Scope::Owner(self.parent)) {
            Ok(r) => log_report(&r),
            Err(e) => log(&format!("FAILED to read the journal: {e}")),
        }
    }

    /// The backup is gone without a `done`: thaw first (that cannot wait),
    /// then, once the process is really gone, remove what it was reading.
    fn undo_all(&self, parent_start: Option<u64>) {
        log(&format!(
            "backup process {} ended without finishing: undoing what it left",
            self.parent
        ));
        self.thaw();
        let until = Instant::now() + Duration::from_secs(30);
        while parent_start.is_some_and(|s| freezeframe::process_alive(self.parent, s))
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        match recover(&self.state_dir, &self.tools, &[], Scope::Owner(self.parent)) {
            Ok(r) => log_report(&r),
            Err(e) => log(&format!("FAILED to read the journal: {e}")),
        }
    }
}

/// The stdin lines, on a channel that disconnects when the pipe closes.
fn lines() -> crossbeam_channel::Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
        // Dropping `tx` tells the loop the pipe closed.
    });
    rx
}

/// The guardian process: watches the parent until it says `done`.
pub fn run(a: &GuardianArgs) -> Result<u8> {
    let paths = HostPaths {
        cgroups: freezeframe::CgroupMounts {
            v2: a.cgroup_v2.clone(),
            v1_freezer: a.cgroup_v1_freezer.clone(),
            v1_blkio: None,
        },
        openvz_conf_dir: a.openvz_conf_dir.clone(),
        lxcpath: a.lxcpath.clone(),
    };
    let w = Watched {
        parent: a.parent,
        state_dir: a.state_dir.clone(),
        tools: host_toolbox(&paths),
    };
    let parent_start = freezeframe::process_start_time(a.parent);
    let rx = lines();
    let mut deadline: Option<Instant> = None;
    loop {
        let msg = match deadline {
            Some(at) => rx.recv_deadline(at),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg.map(|l| Message::decode(&l)) {
            Ok(Ok(Message::Open { deadline_unix_ms })) => {
                deadline = Some(Instant::now() + remaining(deadline_unix_ms, SystemTime::now()));
            }
            Ok(Ok(Message::Close)) => deadline = None,
            Ok(Ok(Message::Done)) => return Ok(crate::exit::OK),
            Ok(Err(e)) => {
                // The backup and its guardian disagree: a window the guardian
                // cannot read is a window it cannot watch. Thaw now.
                log(&format!("{e}: thawing now"));
                w.thaw();
                deadline = None;
            }
            Err(RecvTimeoutError::Timeout) => {
                log("the freeze window's deadline passed: thawing");
                w.thaw();
                deadline = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                w.undo_all(parent_start);
                return Ok(crate::exit::OK);
            }
        }
    }
}
