//! The status record as a Prometheus text-format file for node_exporter's
//! textfile collector: names with the `freezeframe_` prefix and their unit
//! last, every family with `# HELP` and `# TYPE`, written atomically and
//! world-readable (the collector runs as another user).

use std::fmt::Write as _;
use std::path::Path;

use super::status::StatusBook;
use crate::target::manifest::Outcome;

/// One family: name, help, and its samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, v: f64) {
        self.samples.push((labels, v));
    }

    fn render(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (labels, v) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", inner.join(","));
            }
            let _ = writeln!(out, " {}", number(*v));
        }
    }
}

/// A label value as the text format needs it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The code of a result in `freezeframe_last_result`.
fn code(o: Outcome) -> f64 {
    match o {
        Outcome::Ok => 0.0,
        Outcome::Partial => 1.0,
        Outcome::Failed => 2.0,
    }
}

/// The text of the metrics file: each of `ids` (the configured
/// containers) that has a record, and the last run's totals.
pub fn render(book: &StatusBook, ids: &[String]) -> String {
    let mut success = Family::new(
        "freezeframe_last_success_timestamp_seconds",
        "End of the container's last run with result ok, Unix time.",
    );
    let mut result = Family::new(
        "freezeframe_last_result",
        "Result of the container's last run: 0 ok, 1 partial, 2 failed.",
    );
    let mut last = Family::new(
        "freezeframe_last_run_timestamp_seconds",
        "End of the container's last run, Unix time.",
    );
    let mut freeze = Family::new(
        "freezeframe_freeze_seconds",
        "The container's freeze window in its last run.",
    );
    let mut duration = Family::new(
        "freezeframe_duration_seconds",
        "Time the container's last run spent on it, freeze and archive.",
    );
    let mut read = Family::new(
        "freezeframe_read_bytes",
        "File data read from the container's snapshot in its last run.",
    );
    let mut written = Family::new(
        "freezeframe_written_bytes",
        "Bytes the container's last run added to the target.",
    );
    let mut peak = Family::new(
        "freezeframe_snapshot_peak_usage_ratio",
        "Highest copy-on-write use of the container's snapshot while it was read (LVM), 0 to 1.",
    );
    let mut drill_at = Family::new(
        "freezeframe_last_drill_timestamp_seconds",
        "End of the container's last restore drill, Unix time.",
    );
    let mut drill_result = Family::new(
        "freezeframe_last_drill_result",
        "Result of the container's last restore drill: 0 passed, 2 failed.",
    );
    for id in ids {
        if let Some(d) = book.drills.get(id) {
            drill_at.add(vec![("container", id.clone())], d.at.timestamp() as f64);
            drill_result.add(
                vec![("container", id.clone())],
                if d.ok { 0.0 } else { 2.0 },
            );
        }
        let Some(s) = book.containers.get(id) else {
            continue;
        };
        let l = || vec![("container", id.clone())];
        let r = &s.last_run;
        if let Some((t, _)) = &s.last_success {
            success.add(l(), t.timestamp() as f64);
        }
        result.add(l(), code(r.result));
        last.add(l(), r.finished_at.timestamp() as f64);
        if let Some(f) = r.freeze_seconds {
            freeze.add(l(), f);
        }
        duration.add(l(), r.duration_seconds);
        read.add(l(), r.bytes_read as f64);
        written.add(l(), r.bytes_written as f64);
        if let Some(p) = r.snapshot_peak_percent {
            peak.add(l(), p / 100.0);
        }
    }
    let mut run = Family::new(
        "freezeframe_run_timestamp_seconds",
        "End of the last run, Unix time.",
    );
    let mut run_duration = Family::new(
        "freezeframe_run_duration_seconds",
        "Duration of the last run.",
    );
    let mut run_containers = Family::new(
        "freezeframe_run_containers",
        "Containers in the last run, by result.",
    );
    let mut run_read = Family::new("freezeframe_run_read_bytes", "File data the last run read.");
    let mut run_written = Family::new(
        "freezeframe_run_written_bytes",
        "Bytes the last run added to the target.",
    );
    let mut run_freeze = Family::new(
        "freezeframe_run_freeze_max_seconds",
        "The longest freeze window of the last run.",
    );
    if let Some(t) = &book.last_run {
        run.add(vec![], t.finished_at.timestamp() as f64);
        let d = t.finished_at.signed_duration_since(t.started_at);
        run_duration.add(vec![], d.num_milliseconds() as f64 / 1000.0);
        for (name, n) in [("ok", t.ok), ("partial", t.partial), ("failed", t.failed)] {
            run_containers.add(vec![("result", name.to_owned())], n as f64);
        }
        run_read.add(vec![], t.bytes_read as f64);
        run_written.add(vec![], t.bytes_written as f64);
        run_freeze.add(vec![], t.freeze_seconds_max);
    }
    let mut out = String::new();
    for f in [
        success,
        result,
        last,
        freeze,
        duration,
        read,
        written,
        peak,
        drill_at,
        drill_result,
        run,
        run_duration,
        run_containers,
        run_read,
        run_written,
        run_freeze,
    ] {
        f.render(&mut out);
    }
    out
}

/// Replaces the metrics file at `path` with `text`, atomically, mode 0644.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    crate::sys::atomic::replace_with_mode(path, text.as_bytes(), 0o644)
}
