//! The binary's subcommands besides the server.

pub mod client;
