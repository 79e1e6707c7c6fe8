//! One module per subcommand.

pub mod backup;
pub mod debug;
pub mod list;
pub mod list_containers;
pub mod recover;
pub mod restore;
pub mod show_config;
pub mod verify;
