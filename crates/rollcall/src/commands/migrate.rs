//! `rollcall migrate`: apply database migrations without starting the server.

use rollcall_server::{Config, app, telemetry};

pub fn run(args: super::serve::Args) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let db = app::connect_and_migrate(&config).await?;
        println!("migrations applied to {} ({})", app::redact_url(&config.database_url()), db.backend_name());
        db.close().await;
        Ok(())
    })
}
