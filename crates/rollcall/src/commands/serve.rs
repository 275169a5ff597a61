//! `rollcall serve` and `rollcall worker`: start a server process in one of its roles.

use std::path::PathBuf;

use anyhow::Context as _;
use rollcall_server::config::ProcessRole;
use rollcall_server::{Config, telemetry};

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: ./rollcall.toml when present).
    #[arg(long, env = "ROLLCALL_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: Args,
    /// Serve the API only; task workers run in other processes (`rollcall worker`) on
    /// the same database (and RabbitMQ, when `amqp_url` is set).
    #[arg(long)]
    pub no_workers: bool,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    run(args.common, if args.no_workers { ProcessRole::Api } else { ProcessRole::All })
}

/// `rollcall worker`: task workers only, answering `/healthz`, `/readyz` and `/metrics`
/// on `bind`.
pub fn worker(args: Args) -> anyhow::Result<()> {
    run(args, ProcessRole::Worker)
}

fn run(args: Args, role: ProcessRole) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    config.role = role;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {} (is another server running there?)", config.bind))?;
        rollcall_server::run(config, listener, rollcall_server::shutdown_signal()).await
    })
}
