//! After every run: the status record (`freezeframe status`) and the
//! metrics textfile. Neither can fail a backup; what goes wrong is a
//! warning.

use crate::config::Config;
use crate::state::{metrics, StatusBook};
use crate::target::manifest::Manifest;

/// Takes the run of `m` into the status record of `config`'s state dir
/// and rewrites the metrics file, if one is configured. Returns warnings.
pub fn record_run(config: &Config, m: &Manifest) -> Vec<String> {
    update(config, |book| book.record(m))
}

/// Loads the record, changes it with `f`, saves it, rewrites the metrics.
fn update(config: &Config, f: impl FnOnce(&mut StatusBook)) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut book = match StatusBook::load(&config.state_dir) {
        Ok(b) => b,
        Err(e) => {
            warnings.push(format!("status record unreadable, starting a new one: {e}"));
            StatusBook::default()
        }
    };
    f(&mut book);
    if let Err(e) = book.save(&config.state_dir) {
        warnings.push(format!("status record not updated: {e}"));
    }
    if let Some(path) = &config.metrics.textfile {
        let ids = configured(config);
        if let Err(e) = metrics::write(path, &metrics::render(&book, &ids)) {
            warnings.push(format!("metrics file {} not written: {e}", path.display()));
        }
    }
    warnings
}

/// Takes drill results into the status record and rewrites the metrics
/// file. Returns warnings.
pub fn record_drills(config: &Config, results: &[super::drill::DrillResult]) -> Vec<String> {
    update(config, |book| {
        for r in results {
            book.drills.insert(
                r.id.clone(),
                crate::state::status::Drill {
                    at: r.at,
                    backup: r.backup.clone(),
                    ok: r.ok,
                    error: r.error.clone(),
                },
            );
        }
    })
}

/// The configured container ids, in config order.
pub fn configured(config: &Config) -> Vec<String> {
    config.containers.iter().map(|c| c.id.to_string()).collect()
}
