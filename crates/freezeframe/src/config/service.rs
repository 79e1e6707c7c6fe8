//! What running unattended needs: `[metrics]` (the textfile for
//! node_exporter), `[notify]` (webhooks and mail) and `[throttle]` (what
//! the archive phase may take from the host). Raw tables, model and checks
//! of the three, one file because each is a handful of keys.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::model::SnapshotSize;
use super::HumanDuration;

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub textfile: Option<PathBuf>,
}

/// `[notify]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub timeout: Option<Spanned<HumanDuration>>,
    pub retries: Option<u32>,
    #[serde(default)]
    pub webhook: Vec<RawWebhook>,
    pub mail: Option<RawMail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub url: Option<String>,
    pub start_url: Option<String>,
    pub success_url: Option<String>,
    pub failure_url: Option<String>,
    pub on: Option<NotifyOn>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    pub to: Vec<String>,
    pub from: Option<String>,
    pub sendmail: Option<PathBuf>,
    pub on: Option<NotifyOn>,
}

/// `[throttle]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThrottle {
    pub io_weight: Option<u32>,
    pub io_read_max: Option<RawRate>,
    pub io_write_max: Option<RawRate>,
    pub nice: Option<i32>,
    pub bwlimit: Option<RawRate>,
}

/// A rate as written: `"40M"`, or bytes/s as a number (what
/// `show-config` prints, so its output loads again).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawRate {
    Bytes(u64),
    Text(String),
}

/// `[metrics]`: where the Prometheus textfile goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetricsConfig {
    /// The file, replaced atomically after every run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub textfile: Option<PathBuf>,
}

/// When a notification is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// Only after a run with a failed or partial container.
    Failure,
    /// After every run.
    #[default]
    Always,
}

/// One webhook: a POST of the run's JSON summary at `url`, and
/// healthchecks.io-style pings at start, success and failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// Gets the run's summary (JSON) when the run ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Pinged when the run starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_url: Option<String>,
    /// Pinged when every container is ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_url: Option<String>,
    /// Pinged (with the summary) when a container is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_url: Option<String>,
    /// When `url` gets the summary.
    pub on: NotifyOn,
}

/// Mail through the system's `sendmail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailConfig {
    /// Recipients.
    pub to: Vec<String>,
    /// Sender (default: sendmail's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The program (`sendmail -t -oi` reads the message on stdin).
    pub sendmail: PathBuf,
    /// When a mail is sent.
    pub on: NotifyOn,
}

/// `[notify]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifyConfig {
    /// Longest one attempt may take.
    pub timeout: HumanDuration,
    /// Attempts after the first.
    pub retries: u32,
    /// Webhooks.
    #[serde(rename = "webhook", skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    /// Mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            timeout: HumanDuration(Duration::from_secs(10)),
            retries: 2,
            webhooks: Vec::new(),
            mail: None,
        }
    }
}

/// `[throttle]`: limits for the archive phase (never the freeze window).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThrottleConfig {
    /// cgroup `io.weight` (1..10000, default 100) of the archive workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u32>,
    /// Bytes/s the archive workers may read from each volume's device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_read_max: Option<u64>,
    /// Bytes/s the archive workers may write to the target's device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_write_max: Option<u64>,
    /// Nice value of the archive workers (0..19).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nice: Option<i32>,
    /// Bytes/s written to the target, counted by freezeframe itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bwlimit: Option<u64>,
}

impl ThrottleConfig {
    /// Whether the archive workers need a cgroup of their own.
    pub fn needs_cgroup(&self) -> bool {
        self.io_weight.is_some() || self.io_read_max.is_some() || self.io_write_max.is_some()
    }
}

/// A rate like `40M` (bytes per second).
pub fn rate(text: &str, key: &str) -> Result<u64, String> {
    match text.parse::<SnapshotSize>() {
        Ok(SnapshotSize::Bytes(b)) => Ok(b),
        _ => Err(format!(
            "{key} = \"{text}\" is not a rate: write bytes per second like \"40M\" or \"1G\""
        )),
    }
}

fn url(u: Option<String>, key: &str) -> Result<Option<String>, String> {
    let Some(u) = u else { return Ok(None) };
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(Some(u))
    } else {
        Err(format!(
            "notify.webhook.{key} = \"{u}\" is not an http:// or https:// URL"
        ))
    }
}

/// A mail address or header value that cannot inject headers.
fn header_safe(v: &str, key: &str) -> Result<(), String> {
    if v.is_empty() || v.chars().any(|c| c.is_control()) || v.starts_with('-') {
        return Err(format!(
            "notify.mail.{key} `{}` is not a mail address (no line breaks, no leading `-`)",
            v.escape_debug()
        ));
    }
    Ok(())
}

pub(super) fn metrics(raw: RawMetrics) -> Result<MetricsConfig, String> {
    if let Some(p) = &raw.textfile {
        super::validate::absolute(p, "metrics.textfile")?;
        if p.extension().is_none_or(|e| e != "prom") {
            return Err(format!(
                "metrics.textfile `{}` must end in `.prom`: node_exporter's textfile collector reads only those",
                p.display()
            ));
        }
    }
    Ok(MetricsConfig {
        textfile: raw.textfile,
    })
}

pub(super) fn notify(raw: RawNotify, text: &str) -> Result<NotifyConfig, String> {
    let timeout = super::validate::bounded_duration(
        text,
        raw.timeout,
        "notify.timeout",
        (Duration::from_millis(100), Duration::from_secs(300)),
        NotifyConfig::default().timeout.0,
    )
    .map_err(|(_, m)| m)?;
    let retries = raw.retries.unwrap_or(2);
    if retries > 10 {
        return Err(format!(
            "notify.retries = {retries} is out of range: allowed 0 to 10"
        ));
    }
    let mut webhooks = Vec::new();
    for w in raw.webhook {
        let hook = Webhook {
            url: url(w.url, "url")?,
            start_url: url(w.start_url, "start_url")?,
            success_url: url(w.success_url, "success_url")?,
            failure_url: url(w.failure_url, "failure_url")?,
            on: w.on.unwrap_or_default(),
        };
        if hook.url.is_none()
            && hook.start_url.is_none()
            && hook.success_url.is_none()
            && hook.failure_url.is_none()
        {
            return Err(
                "a [[notify.webhook]] needs url, start_url, success_url or failure_url".into(),
            );
        }
        webhooks.push(hook);
    }
    let mail = match raw.mail {
        None => None,
        Some(m) => {
            if m.to.is_empty() {
                return Err("[notify.mail] needs `to`, a list of addresses".into());
            }
            for t in &m.to {
                header_safe(t, "to")?;
            }
            if let Some(f) = &m.from {
                header_safe(f, "from")?;
            }
            let sendmail = m
                .sendmail
                .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail"));
            super::validate::absolute(&sendmail, "notify.mail.sendmail")?;
            Some(MailConfig {
                to: m.to,
                from: m.from,
                sendmail,
                on: m.on.unwrap_or(NotifyOn::Failure),
            })
        }
    };
    Ok(NotifyConfig {
        timeout,
        retries,
        webhooks,
        mail,
    })
}

pub(super) fn throttle(raw: RawThrottle) -> Result<ThrottleConfig, String> {
    if let Some(w) = raw.io_weight {
        if !(1..=10_000).contains(&w) {
            return Err(format!("throttle.io_weight = {w} is out of range: allowed 1 to 10000 (100 is the default share)"));
        }
    }
    if let Some(n) = raw.nice {
        if !(0..=19).contains(&n) {
            return Err(format!(
                "throttle.nice = {n} is out of range: allowed 0 (none) to 19 (lowest)"
            ));
        }
    }
    let r = |v: Option<RawRate>, key: &str| {
        v.map(|v| match v {
            RawRate::Bytes(0) => Err(format!(
                "{key} = 0 is not a rate: leave it out for no limit"
            )),
            RawRate::Bytes(b) => Ok(b),
            RawRate::Text(t) => rate(&t, key),
        })
        .transpose()
    };
    Ok(ThrottleConfig {
        io_weight: raw.io_weight,
        io_read_max: r(raw.io_read_max, "throttle.io_read_max")?,
        io_write_max: r(raw.io_write_max, "throttle.io_write_max")?,
        nice: raw.nice,
        bwlimit: r(raw.bwlimit, "throttle.bwlimit")?,
    })
}

/// `[drill]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrill {
    pub scratch_dir: Option<PathBuf>,
    pub check_timeout: Option<Spanned<HumanDuration>>,
}

/// `[drill]`: where restore drills restore to, and how long a check runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillConfig {
    /// Scratch folders go here (default `<state_dir>/drill`).
    pub scratch_dir: PathBuf,
    /// Longest a container's `drill_check` may run.
    pub check_timeout: HumanDuration,
}

pub(super) fn drill(
    raw: RawDrill,
    state_dir: &std::path::Path,
    text: &str,
) -> Result<DrillConfig, String> {
    let scratch_dir = raw.scratch_dir.unwrap_or_else(|| state_dir.join("drill"));
    super::validate::absolute(&scratch_dir, "drill.scratch_dir")?;
    let check_timeout = super::validate::bounded_duration(
        text,
        raw.check_timeout,
        "drill.check_timeout",
        (Duration::from_secs(1), Duration::from_secs(24 * 3600)),
        Duration::from_secs(600),
    )
    .map_err(|(_, m)| m)?;
    Ok(DrillConfig {
        scratch_dir,
        check_timeout,
    })
}
