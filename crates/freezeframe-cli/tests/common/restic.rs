//! Running Debian's `restic` against a test repository (its password and a
//! cache of its own, the environment's S3 settings).

use std::process::{Command, Output};

use super::{pw_file, Env};

/// `restic -r REPO ARGS` as a command, not yet run.
pub fn command(env: &Env, repo: &str, args: &[&str]) -> Command {
    let mut c = Command::new("restic");
    c.arg("-r")
        .arg(repo)
        .args(args)
        .env("RESTIC_PASSWORD_FILE", pw_file(env))
        .env("RESTIC_CACHE_DIR", env.dir.path().join("restic-cache"))
        .envs(env.vars.iter().map(|(k, v)| (k, v)));
    c
}

/// Runs `restic -r REPO ARGS`, failing the test unless it succeeds.
pub fn restic(env: &Env, repo: &str, args: &[&str]) -> Output {
    let out = command(env, repo, args).output().unwrap();
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
