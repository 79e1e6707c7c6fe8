//! Human output: sizes, the per-container summary table, the progress bar.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use freezeframe::{Manifest, Observer, Outcome, Phase, Report};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Writes a line to stderr. Unlike `eprintln!` it does not panic when
/// stderr is gone (a closed pipe, a dropped session): a backup or its
/// guardian must go on undoing what it did.
pub fn note(line: impl std::fmt::Display) {
    use std::io::Write;
    static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *JOURNAL.get_or_init(crate::journal::stderr_is_journal) {
        let line = line.to_string();
        let _ = writeln!(
            std::io::stderr(),
            "{}{line}",
            crate::journal::prefix_of(&line)
        );
    } else {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Writes `freezeframe: warning: WHAT` to stderr ([`note`]).
pub fn warn(what: impl std::fmt::Display) {
    note(format_args!("freezeframe: warning: {what}"));
}

pub use freezeframe::human_size as size;

/// Prints a command's report: JSON with `--json`, else its text.
pub fn print_report(r: &dyn Report, json: bool) -> anyhow::Result<()> {
    if json {
        print_text(&format!(
            "{}\n",
            serde_json::to_string_pretty(&r.to_json())?
        ))
    } else {
        print_text(&r.to_text())
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
pub fn print_text(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// `850 ms`, `12.3 s`.
pub fn duration_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// The per-container summary of a run.
pub fn summary(m: &Manifest) -> String {
    let mut s = format!(
        "{:<16} {:<8} {:<10} {:>10} {:>10} {:>10} {:>9}\n",
        "CONTAINER", "RESULT", "MODE", "FREEZE ms", "SIZE IN", "SIZE OUT", "DURATION"
    );
    for c in &m.containers {
        s.push_str(&format!(
            "{:<16} {:<8} {:<10} {:>10} {:>10} {:>10} {:>9}\n",
            c.id,
            c.result.to_string(),
            c.mode
                .map(|m| m.to_string())
                .unwrap_or_else(|| "live".into()),
            c.freeze_ms
                .map(|f| format!("{f:.1}"))
                .unwrap_or_else(|| "-".into()),
            size(c.bytes_in),
            size(c.bytes_out),
            duration_ms(c.timings.total_ms),
        ));
    }
    for c in &m.containers {
        if let Some(r) = &c.repository {
            s.push_str(&format!(
                "{}: snapshot {} (parent {}): files {} new, {} changed, {} unchanged; read {}, added {} ({} stored) in {}\n",
                c.id,
                &r.snapshot[..8.min(r.snapshot.len())],
                r.parent
                    .as_deref()
                    .map(|p| &p[..8.min(p.len())])
                    .unwrap_or("none"),
                r.files_new,
                r.files_changed,
                r.files_unchanged,
                size(r.bytes_read),
                size(r.bytes_added),
                size(r.bytes_added_packed),
                duration_ms(r.duration_ms),
            ));
            if let Some(e) = &r.extents {
                s.push_str(&extents_line(&c.id, r.files_changed, e));
            }
        }
        if let Some(n) = &c.note {
            s.push_str(&format!("{}: note: {n}\n", c.id));
        }
        for m in &c.mounts {
            s.push_str(&format!("{}: warning: {}\n", c.id, m.warning()));
        }
        if let Some(e) = &c.error {
            s.push_str(&format!("{}: error: {e}\n", c.id));
        }
        for w in c.tree.warnings.iter().take(20) {
            s.push_str(&format!("{}: warning: {w}\n", c.id));
        }
        if c.tree.warnings.len() > 20 {
            s.push_str(&format!(
                "{}: … {} more warnings in the manifest\n",
                c.id,
                c.tree.warnings.len() - 20
            ));
        }
        if !c.tree.skipped_sockets.is_empty() {
            s.push_str(&format!(
                "{}: {} socket(s) skipped\n",
                c.id,
                c.tree.skipped_sockets.len()
            ));
        }
    }
    for w in &m.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}

/// Whether a run is good, partial or failed overall.
pub fn overall(m: &Manifest) -> Outcome {
    // Run-level warnings (e.g. a snapshot not removed) make a good run partial.
    match m.containers_outcome() {
        Outcome::Ok if !m.warnings.is_empty() => Outcome::Partial,
        o => o,
    }
}

/// Progress on a terminal: a bar per container (bytes read of its size
/// from a quick pre-walk, rate, ETA, phase) under an overall line
/// (containers done, bytes read, rate). When stderr is not a terminal (a
/// log, the journal), each phase is a plain line instead.
pub struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Mutex<HashMap<String, ProgressBar>>,
    read: AtomicU64,
    lines: bool,
    visible: bool,
}

const CONTAINER_SPINNER: &str = "{prefix:>12} {spinner} {bytes} ({binary_bytes_per_sec}) {msg}";
const CONTAINER_BAR: &str =
    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta}) {msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    /// Bars on stderr when it is a terminal, plain phase lines when it is
    /// not; nothing at all when `hidden` (`--json`, `--quiet`).
    /// `containers`: how many the run backs up.
    pub fn new(hidden: bool, containers: u64) -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let visible = !hidden && terminal;
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::new(containers));
        overall.set_style(style("{pos}/{len} containers done, {elapsed} {msg}"));
        overall.enable_steady_tick(Duration::from_millis(200));
        Self {
            multi,
            overall,
            bars: Mutex::default(),
            read: AtomicU64::new(0),
            lines: !hidden && !terminal,
            visible,
        }
    }

    /// The container's bar, made on first use.
    fn bar(&self, container: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.entry(container.to_owned())
            .or_insert_with(|| {
                let b = self
                    .multi
                    .insert_before(&self.overall, ProgressBar::no_length());
                b.set_style(style(CONTAINER_SPINNER));
                b.set_prefix(container.to_owned());
                b
            })
            .clone()
    }

    /// Removes the bars.
    pub fn finish(&self) {
        for b in self.bars.lock().unwrap_or_else(|p| p.into_inner()).values() {
            b.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Observer for Progress {
    fn phase(&self, container: &str, phase: &Phase) {
        let msg = match phase {
            Phase::Freezing => "freezing".to_owned(),
            Phase::Thawed { freeze_ms } => format!("thawed after {freeze_ms:.1} ms"),
            Phase::Archiving => "archiving".to_owned(),
            Phase::Finished(o) => o.to_string(),
        };
        if self.lines {
            note(format_args!("freezeframe: {container}: {msg}"));
        }
        let bar = self.bar(container);
        if let Phase::Finished(_) = phase {
            bar.finish_with_message(msg);
            self.overall.inc(1);
        } else {
            bar.set_message(msg);
        }
    }

    fn bytes(&self, container: &str, n: u64) {
        // Called for every read of every worker: nothing to do unseen.
        if !self.visible {
            return;
        }
        self.bar(container).inc(n);
        let total = self.read.fetch_add(n, Ordering::Relaxed) + n;
        let secs = self.overall.elapsed().as_secs_f64().max(0.001);
        self.overall.set_message(format!(
            "{} read ({}/s)",
            size(total),
            size((total as f64 / secs) as u64)
        ));
    }

    fn wants_sizes(&self) -> bool {
        self.visible
    }

    fn sized(&self, container: &str, bytes: u64) {
        let bar = self.bar(container);
        bar.set_length(bytes);
        bar.set_style(style(CONTAINER_BAR));
    }
}

/// What the extent path did for one container, as one line.
fn extents_line(id: &str, changed: u64, e: &freezeframe::ExtentRecord) -> String {
    if let Some(why) = &e.not_used {
        return format!("{id}: changed files read whole: {why}\n");
    }
    let whole = changed.saturating_sub(e.files);
    let mut line = format!(
        "{id}: {} changed files read around their changes ({} changed), {whole} read whole",
        e.files,
        size(e.changed_bytes)
    );
    if !e.fallbacks.is_empty() {
        let why: Vec<String> = e
            .fallbacks
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        line.push_str(&format!(" ({})", why.join(", ")));
    }
    line.push('\n');
    line
}
