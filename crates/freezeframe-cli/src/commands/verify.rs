//! `freezeframe verify`.

use anyhow::Result;
use freezeframe::config::Config;
use freezeframe::target::Store;

use crate::cli::VerifyArgs;
use crate::exit;

/// Re-reads every file of the given runs.
pub fn run(config: &Config, args: &VerifyArgs) -> Result<u8> {
    if config.target.repository.is_some() {
        return crate::commands::repository::verify(config, args);
    }
    if args.read_data || args.read_data_subset.is_some() {
        return Err(crate::exit::UsageError(
            "--read-data and --read-data-subset apply to repository targets; a tar target's verify always reads everything".into(),
        )
        .into());
    }
    let checks = Store::new(&config.target.path).verify(&args.runs)?;
    let bad = checks.iter().filter(|c| c.problem.is_some()).count();
    let running = checks.iter().filter(|c| c.in_progress.is_some()).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            let what = if c.file.is_empty() {
                c.container.clone()
            } else {
                format!("{}/{}", c.container, c.file)
            };
            match (&c.problem, &c.in_progress) {
                (_, Some(note)) => println!("running {}: {note}; not checked", c.run),
                (None, None) => println!("ok      {}  {what}", c.run),
                (Some(p), None) => println!("BAD     {}  {what}: {p}", c.run),
            }
        }
        let running = if running > 0 {
            format!(", {running} run(s) in progress")
        } else {
            String::new()
        };
        println!(
            "{} checked, {bad} bad{running}",
            checks.len() - checks.iter().filter(|c| c.in_progress.is_some()).count()
        );
    }
    Ok(if bad == 0 { exit::OK } else { exit::FAILURE })
}
