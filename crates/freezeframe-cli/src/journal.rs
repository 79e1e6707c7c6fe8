//! Logs as systemd's journal reads them: when stderr is the journal
//! (`JOURNAL_STREAM` names it), each line starts with its syslog level in
//! angle brackets (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug;
//! sd-daemon(3)), without timestamps or colours, which the journal adds.

use std::fmt;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether stderr is the journal stream systemd set up for this service.
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(m) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino())
}

/// The syslog prefix of a note line printed by [`crate::output::note`].
pub fn prefix_of(line: &str) -> &'static str {
    if line.contains(": error: ") {
        "<3>"
    } else if line.contains(": warning: ") {
        "<4>"
    } else {
        "<6>"
    }
}

/// Formats events as `<N>target: message fields`.
pub struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(w, "<{level}>{}: ", event.metadata().target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_get_the_level_they_say() {
        assert_eq!(prefix_of("freezeframe: error: no such container"), "<3>");
        assert_eq!(prefix_of("freezeframe: warning: mail not sent"), "<4>");
        assert_eq!(prefix_of("run 2026 -> /x"), "<6>");
    }
}
