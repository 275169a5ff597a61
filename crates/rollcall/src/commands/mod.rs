//! One module per subcommand.

pub mod admin;
pub mod bench;
mod engine_args;
pub mod eval;
pub mod migrate;
pub mod rotate_data_key;
pub mod serve;
