//! The `freezeframe` command.

mod cli;
mod commands;
mod exit;
mod guardian;
mod journal;
mod mount;
mod output;
mod signals;
mod system;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_env("FREEZEFRAME_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    if journal::stderr_is_journal() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(journal::JournalFormat)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            crate::output::note(format_args!("freezeframe: error: {}", render(&e)));
            ExitCode::from(exit::code_for(&e))
        }
    }
}

/// An error and its causes on one line, each cause once: a cause whose
/// text the message already holds (most of ours quote their source) is not
/// repeated.
fn render(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Debug(d) => return commands::debug::run(&d.what),
        Command::Guardian(a) => return guardian::run(a),
        Command::Completions { shell } => return commands::docs::completions(*shell),
        Command::ManPages { dir } => return commands::docs::man_pages(dir),
        _ => {}
    }
    let config_path = cli.config_path();
    let config = freezeframe::load(&config_path)?;
    match &cli.command {
        Command::Backup(a) => commands::backup::run(&config, a),
        Command::Recover(a) => commands::recover::run(&config, a),
        Command::ListContainers(a) => commands::list_containers::run(&config, a),
        Command::Guardian(_)
        | Command::Debug(_)
        | Command::Completions { .. }
        | Command::ManPages { .. } => {
            unreachable!("handled before the config is read")
        }
        Command::List(a) => commands::list::run(&config, a),
        Command::Restore(a) => commands::restore::run(&config, a),
        Command::Ls(a) => commands::ls::run(&config, a),
        Command::Cat(a) => commands::cat::run(&config, a),
        Command::Verify(a) => commands::verify::run(&config, a),
        Command::ShowConfig => commands::show_config::run(&config),
        Command::Init => commands::init::run(&config),
        Command::Prune(a) => commands::prune::run(&config, a),
        Command::Status(a) => commands::status::run(&config, a),
        Command::Drill(a) => commands::drill::run(&config, a),
        Command::Mount(a) => commands::mount::run(&config, a, &config_path),
        Command::Umount(a) => commands::mount::umount(&config, a),
    }
}
