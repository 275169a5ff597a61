//! `rollcall serve`: start the HTTP server.

use std::path::PathBuf;

use anyhow::Context as _;
use rollcall_server::{Config, telemetry};

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: ./rollcall.toml when present).
    #[arg(long, env = "ROLLCALL_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {} (is another server running there?)", config.bind))?;
        rollcall_server::run(config, listener, rollcall_server::shutdown_signal()).await
    })
}
