//! One module per subcommand.

pub mod backup;
pub mod debug;
pub mod init;
pub mod list;
pub mod list_containers;
pub mod prune;
pub mod recover;
pub mod repository;
pub mod restore;
pub mod show_config;
pub mod verify;
