//! One module per subcommand.

pub mod admin;
pub mod bench;
pub mod demo_data;
mod engine_args;
pub mod eval;
pub mod migrate;
pub mod rotate_data_key;
pub mod serve;
