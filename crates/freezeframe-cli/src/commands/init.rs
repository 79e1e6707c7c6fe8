//! `freezeframe init`: create the repository of a `repository` target.

use anyhow::Result;
use freezeframe::{Config, SystemRunner};

use crate::exit;

/// Creates the repository; refuses if one is there.
pub fn run(config: &Config) -> Result<u8> {
    let r = freezeframe::init(&config.target, &SystemRunner)?;
    let location = config
        .target
        .repository()
        .map(|r| r.location.describe())
        .unwrap_or_default();
    println!("created repository {} at {location}", r.id);
    match r.conditional_writes {
        Some(true) => println!("the store honours conditional writes (If-None-Match)"),
        Some(false) => crate::output::note(format_args!(
            "freezeframe: warning: the store ignores conditional writes (If-None-Match): two hosts running `init` on the same location at once could overwrite each other's config; run `init` once, from one host"
        )),
        None => {}
    }
    Ok(exit::OK)
}
