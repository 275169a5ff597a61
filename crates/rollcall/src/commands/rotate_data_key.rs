//! `rollcall rotate-data-key`: a new data key, and everything sealed at rest re-sealed with it.

use rollcall_server::{Config, key_rotation, telemetry};

pub fn run(args: super::serve::Args) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let rotation = key_rotation::rotate_data_key(&config).await?;
        println!(
            "data key rotated: key {} now seals; {} value(s) re-sealed; {} previous key(s) retired from {}",
            rotation.key_id,
            rotation.resealed,
            rotation.retired_keys,
            rollcall_server::app::data_key_file(&config).display()
        );
        Ok(())
    })
}
