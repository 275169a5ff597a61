//! `rollcall admin create`: create an admin account from the command line.

use rollcall_server::domain::auth::PasswordPool;
use rollcall_server::domain::users::{Email, NewPassword};
use rollcall_server::{Config, app, telemetry};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Create an admin who can then log in and manage everything else over the API.
    Create {
        #[arg(long)]
        email: String,
        /// At least 8 characters. Prefer the ROLLCALL_NEW_ADMIN_PASSWORD variable, which
        /// keeps the password out of the shell history.
        #[arg(long, env = "ROLLCALL_NEW_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
        #[command(flatten)]
        config: super::serve::Args,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let AdminCommand::Create { email, password, first_name, last_name, config } = args.command;
    let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("--email {}", e.message))?;
    let password = NewPassword::parse(&password).map_err(|e| anyhow::anyhow!("--password {}", e.message))?;
    let config = Config::load(config.config.as_deref())?;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let db = app::connect_and_migrate(&config).await?;
        let passwords = PasswordPool::default();
        let result = app::create_admin(&db, &passwords, &email, &password, &first_name, &last_name).await;
        db.close().await;
        let user = result.map_err(|e| match e.downcast_ref::<rollcall_server::store::StoreError>() {
            Some(rollcall_server::store::StoreError::Conflict(_)) => {
                anyhow::anyhow!("a user with e-mail {} already exists", email.as_str())
            }
            _ => e,
        })?;
        println!("created admin {} (id {}, employee_id {})", user.email, user.id, user.employee_id);
        Ok(())
    })
}
