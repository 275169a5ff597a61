//! The `rollcall` binary: parses the command line and hands over to the server or the
//! face engine. Business rules live in `rollcall-server` and `rollcall-face`.

mod allocator;
mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rollcall", version, about = "Face-recognition attendance service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server and its task workers (applies pending migrations first).
    Serve(commands::serve::ServeArgs),
    /// Start task workers only, beside API instances on the same database (`serve --no-workers`).
    Worker(commands::serve::Args),
    /// Apply database migrations and exit.
    Migrate(commands::serve::Args),
    /// Generate a new data key and re-seal every encrypted value with it (stop the server first).
    RotateDataKey(commands::serve::Args),
    /// Manage admin accounts.
    Admin(commands::admin::Args),
    /// Measure recognition accuracy on a labelled set of photos.
    Eval(commands::eval::Args),
    /// Measure face-engine throughput (images/second) on a folder of photos.
    Bench(commands::bench::Args),
    /// Fill the database with synthetic people and attendance (for demos and benchmarks).
    DemoData(commands::demo_data::Args),
}

fn main() -> anyhow::Result<()> {
    allocator::one_heap_per_core();
    match Cli::parse().command {
        Command::Serve(args) => commands::serve::serve(args),
        Command::Worker(args) => commands::serve::worker(args),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::RotateDataKey(args) => commands::rotate_data_key::run(args),
        Command::Admin(args) => commands::admin::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::DemoData(args) => commands::demo_data::run(args),
    }
}
