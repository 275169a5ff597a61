//! One module per subcommand.

pub mod admin;
pub mod bench;
pub mod eval;
pub mod migrate;
pub mod serve;
