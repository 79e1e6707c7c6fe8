//! One module per subcommand.

pub mod backup;
pub mod cat;
pub mod debug;
pub mod docs;
pub mod drill;
pub mod init;
pub mod list;
pub mod list_containers;
pub mod ls;
pub mod mount;
pub mod prune;
pub mod recover;
pub mod restore;
pub mod restore_as;
pub mod show_config;
pub mod status;
pub mod verify;
