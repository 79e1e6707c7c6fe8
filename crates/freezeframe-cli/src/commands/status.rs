//! `freezeframe status`: every configured container with its last good
//! backup, its age, and its last run, as a monitoring plugin reports:
//! exit 0 (OK), 1 (WARNING) or 2 (CRITICAL); 3 (UNKNOWN) when the status
//! record cannot be read.

use anyhow::Result;
use freezeframe::{ago, assess, configured, human_size, Config, Level, StatusBook};
use serde_json::json;

use crate::cli::StatusArgs;

/// The monitoring-plugin exit code for "cannot tell".
const UNKNOWN: u8 = 3;

/// Prints the status of every configured container; the exit code is the
/// worst level.
pub fn run(config: &Config, args: &StatusArgs) -> Result<u8> {
    let book = match StatusBook::load(&config.state_dir) {
        Ok(b) => b,
        Err(e) => {
            // What monitoring plugins say when they cannot tell.
            println!("UNKNOWN: {e}");
            return Ok(UNKNOWN);
        }
    };
    let now = chrono::Utc::now();
    let rows = assess(&book, &configured(config), now, args.max_age.0);
    let worst = rows.iter().map(|r| r.level).max().unwrap_or(Level::Ok);
    if args.json {
        let v = json!({
            "level": worst,
            "max_age_seconds": args.max_age.0.as_secs(),
            "containers": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(worst.exit_code());
    }
    let bad = rows.iter().filter(|r| r.level != Level::Ok).count();
    println!(
        "{}: {} of {} containers need attention (max age {})",
        worst.label(),
        bad,
        rows.len(),
        args.max_age
    );
    println!(
        "{:<16} {:<8} {:<20} {:>8} {:<8} {:>9} {:>9} {:<7}  why",
        "CONTAINER", "LEVEL", "LAST GOOD", "AGE", "LAST RUN", "FREEZE", "WRITTEN", "DRILL"
    );
    for r in &rows {
        let last_good = r
            .last_success
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "never".into());
        let age = r
            .age_seconds
            .map(|s| ago(chrono::Duration::seconds(s)))
            .unwrap_or_else(|| "-".into());
        let (result, freeze, written) = match &r.last_run {
            Some(l) => (
                l.result.to_string(),
                l.freeze_seconds
                    .map(|f| crate::output::duration_ms(f * 1000.0))
                    .unwrap_or_else(|| "-".into()),
                human_size(l.bytes_written),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let drill = match &r.last_drill {
            Some(d) if d.ok => "passed",
            Some(_) => "FAILED",
            None => "-",
        };
        println!(
            "{:<16} {:<8} {:<20} {:>8} {:<8} {:>9} {:>9} {:<7}  {}",
            r.id,
            r.level.label(),
            last_good,
            age,
            result,
            freeze,
            written,
            drill,
            r.reason
        );
    }
    Ok(worst.exit_code())
}
