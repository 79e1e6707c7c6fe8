//! Notifications (`[notify]`): webhooks (the run's JSON summary, and
//! healthchecks.io-style start/success/failure pings) and mail through
//! `sendmail`. Every attempt is bounded by the configured timeout and
//! retried; nothing here ever fails a backup: a notification that cannot
//! be delivered is a warning. The start ping goes out on a thread of its
//! own, so a hanging server delays no freeze window.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{NotifyConfig, NotifyOn};
use crate::sys::http::HttpClient;
use crate::sys::{Cmd, CommandRunner};
use crate::target::manifest::{Manifest, Outcome};

/// One container in a run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSummary {
    /// Container id.
    pub id: String,
    /// Its result.
    pub result: Outcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its freeze window, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_seconds: Option<f64>,
    /// File data read.
    pub bytes_read: u64,
    /// Bytes added to the target.
    pub bytes_written: u64,
}

/// What a notification says of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Always `freezeframe`.
    pub tool: &'static str,
    /// Host name.
    pub host: String,
    /// The run id (none if the run failed before it had one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The worst result of its containers (`failed` if the run itself failed).
    pub result: Outcome,
    /// Why the run as a whole failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// Per container.
    pub containers: Vec<ContainerSummary>,
}

impl RunSummary {
    /// The summary of a run that wrote its manifest.
    pub fn of(m: &Manifest) -> RunSummary {
        let result = m
            .containers
            .iter()
            .map(|c| c.result)
            .max_by_key(|o| match o {
                Outcome::Ok => 0,
                Outcome::Partial => 1,
                Outcome::Failed => 2,
            })
            .unwrap_or(Outcome::Ok);
        RunSummary {
            tool: "freezeframe",
            host: m.host.clone(),
            run: Some(m.run.clone()),
            result,
            error: None,
            started_at: m.started_at,
            finished_at: m.finished_at,
            containers: m
                .containers
                .iter()
                .map(|c| ContainerSummary {
                    id: c.id.clone(),
                    result: c.result,
                    error: c.error.clone(),
                    freeze_seconds: c.freeze_ms.map(|ms| ms / 1000.0),
                    bytes_read: c.bytes_in,
                    bytes_written: c.bytes_out,
                })
                .collect(),
        }
    }

    /// The summary of a run that failed as a whole (before or while it ran).
    pub fn failed(host: &str, started_at: DateTime<Utc>, error: String) -> RunSummary {
        RunSummary {
            tool: "freezeframe",
            host: host.to_owned(),
            run: None,
            result: Outcome::Failed,
            error: Some(error),
            started_at,
            finished_at: Utc::now(),
            containers: Vec::new(),
        }
    }

    fn is_ok(&self) -> bool {
        self.result == Outcome::Ok
    }

    fn wanted(&self, on: NotifyOn) -> bool {
        on == NotifyOn::Always || !self.is_ok()
    }

    /// The mail: headers, then a plain-text body.
    fn mail(&self, to: &[String], from: Option<&str>) -> String {
        let mut m = String::new();
        m.push_str(&format!("To: {}\n", to.join(", ")));
        if let Some(f) = from {
            m.push_str(&format!("From: {f}\n"));
        }
        m.push_str(&format!(
            "Subject: freezeframe on {}: {}{}\n",
            one_line(&self.host),
            self.result,
            self.run
                .as_ref()
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default()
        ));
        m.push_str("Content-Type: text/plain; charset=utf-8\n\n");
        if let Some(e) = &self.error {
            m.push_str(&format!("The run failed: {e}\n"));
        }
        for c in &self.containers {
            m.push_str(&format!(
                "{}: {}{}\n",
                c.id,
                c.result,
                c.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
        }
        m.push_str("\n-- \n");
        m.push_str(&serde_json::to_string_pretty(self).unwrap_or_default());
        m.push('\n');
        m
    }
}

/// A header value kept on one line.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// Sends what `[notify]` asks for.
#[derive(Clone)]
pub struct Notifier {
    cfg: NotifyConfig,
    http: Arc<dyn HttpClient>,
    runner: Arc<dyn CommandRunner>,
}

/// The start pings, on their way; [`StartPings::wait`] collects warnings.
pub struct StartPings(Option<JoinHandle<Vec<String>>>);

impl StartPings {
    /// Waits for the pings to be delivered or given up; their warnings.
    pub fn wait(self) -> Vec<String> {
        self.0.and_then(|h| h.join().ok()).unwrap_or_default()
    }

    /// Leaves the pings to finish on their own (a stopped run does not
    /// wait for a slow server); whatever they still say is lost.
    pub fn abandon(self) {}
}

impl Notifier {
    /// A notifier for `cfg`.
    pub fn new(
        cfg: NotifyConfig,
        http: Arc<dyn HttpClient>,
        runner: Arc<dyn CommandRunner>,
    ) -> Notifier {
        Notifier { cfg, http, runner }
    }

    /// Pings every `start_url`, in the background.
    pub fn start(&self) -> StartPings {
        let urls: Vec<String> = self
            .cfg
            .webhooks
            .iter()
            .filter_map(|w| w.start_url.clone())
            .collect();
        if urls.is_empty() {
            return StartPings(None);
        }
        let me = self.clone();
        StartPings(Some(std::thread::spawn(move || {
            urls.iter()
                .filter_map(|u| me.post(u, b"", "text/plain").err())
                .collect()
        })))
    }

    /// This notifier with every attempt bounded by `cap` and no retries:
    /// for a run stopped by a signal, which must end within a second.
    pub fn hurried(&self, cap: Duration) -> Notifier {
        let mut n = self.clone();
        n.cfg.timeout.0 = n.cfg.timeout.0.min(cap);
        n.cfg.retries = 0;
        n
    }

    /// Sends the end-of-run notifications; returns a warning for each that
    /// could not be delivered.
    pub fn finish(&self, summary: &RunSummary) -> Vec<String> {
        let json = serde_json::to_vec(summary).unwrap_or_default();
        let mut posts: Vec<&str> = Vec::new();
        for w in &self.cfg.webhooks {
            if let Some(u) = w.url.as_deref().filter(|_| summary.wanted(w.on)) {
                posts.push(u);
            }
            let ping = if summary.is_ok() {
                &w.success_url
            } else {
                &w.failure_url
            };
            if let Some(u) = ping {
                posts.push(u);
            }
        }
        let mut warnings: Vec<String> = std::thread::scope(|s| {
            let sent: Vec<_> = posts
                .iter()
                .map(|u| s.spawn(|| self.post(u, &json, "application/json")))
                .collect();
            sent.into_iter()
                .filter_map(|h| h.join().ok().and_then(Result::err))
                .collect()
        });
        if let Some(m) = self.cfg.mail.as_ref().filter(|m| summary.wanted(m.on)) {
            let mut cmd = Cmd::new(m.sendmail.to_string_lossy())
                .arg("-t")
                .arg("-oi")
                .stdin(summary.mail(&m.to, m.from.as_deref()))
                .timeout(self.cfg.timeout.0);
            if let Some(f) = &m.from {
                cmd = cmd.arg("-f").arg(f);
            }
            if let Err(e) = self.runner.run(&cmd) {
                warnings.push(format!("mail to {} not sent: {e}", m.to.join(", ")));
            }
        }
        warnings
    }

    /// POSTs to `url`, retried on errors and non-2xx answers.
    fn post(&self, url: &str, body: &[u8], content_type: &str) -> Result<(), String> {
        let attempts = self.cfg.retries + 1;
        let mut last = String::new();
        for i in 0..attempts {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(250 << (i - 1).min(4)));
            }
            match self.http.post(url, body, content_type, self.cfg.timeout.0) {
                Ok(code) if (200..300).contains(&code) => return Ok(()),
                Ok(code) => last = format!("POST {url}: HTTP {code}"),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "notification not delivered after {attempts} attempt(s): {last}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Webhook;
    use crate::sys::http::HttpError;
    use std::sync::Mutex;

    /// Answers with the given statuses in turn, recording each request.
    struct Scripted(Mutex<(Vec<u16>, Vec<String>)>);

    impl HttpClient for Scripted {
        fn post(&self, url: &str, _: &[u8], _: &str, _: Duration) -> Result<u16, HttpError> {
            let mut g = self.0.lock().unwrap();
            g.1.push(url.to_owned());
            if g.0.is_empty() {
                return Err(HttpError {
                    url: url.into(),
                    reason: "refused".into(),
                });
            }
            Ok(g.0.remove(0))
        }
    }

    struct NoMail;
    impl CommandRunner for NoMail {
        fn run(&self, _: &Cmd) -> Result<crate::sys::CommandOutput, crate::sys::CommandError> {
            panic!("no mail is configured")
        }
    }

    fn summary(result: Outcome) -> RunSummary {
        let mut s = RunSummary::failed("h\nX-Injected: 1", Utc::now(), "boom".into());
        s.result = result;
        s
    }

    #[test]
    fn retries_until_2xx_and_picks_the_ping_by_result() {
        let http = Arc::new(Scripted(Mutex::new((vec![500, 200, 200], Vec::new()))));
        let cfg = NotifyConfig {
            retries: 2,
            webhooks: vec![Webhook {
                url: None,
                start_url: None,
                success_url: Some("http://s".into()),
                failure_url: Some("http://f".into()),
                on: NotifyOn::Always,
            }],
            ..NotifyConfig::default()
        };
        let n = Notifier::new(cfg, http.clone(), Arc::new(NoMail));
        assert!(n.finish(&summary(Outcome::Ok)).is_empty());
        assert!(n.finish(&summary(Outcome::Failed)).is_empty());
        assert_eq!(
            http.0.lock().unwrap().1,
            ["http://s", "http://s", "http://f"]
        );
        let w = n.finish(&summary(Outcome::Failed));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("after 3 attempt(s): POST http://f: refused"),
            "{w:?}"
        );
    }

    #[test]
    fn a_mail_cannot_carry_injected_headers() {
        let m = summary(Outcome::Failed).mail(&["ops@example.net".into()], None);
        let headers: Vec<&str> = m.split("\n\n").next().unwrap().lines().collect();
        assert_eq!(headers.len(), 3, "{m}");
        assert!(headers[1].starts_with("Subject: freezeframe on hX-Injected: 1: failed"));
    }
}
