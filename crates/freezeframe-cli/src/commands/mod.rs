//! One module per subcommand.

pub mod backup;
pub mod list;
pub mod restore;
pub mod show_config;
pub mod verify;
