//! `rollcall demo-data`: fill the database with synthetic people and attendance, to see
//! and benchmark reports, analytics and dashboards.

use std::time::Instant;

use anyhow::Context as _;
use rollcall_server::domain::auth::{PasswordPool, random_token};
use rollcall_server::domain::calendar::Calendar;
use rollcall_server::domain::demo::{self, DemoPlan};
use rollcall_server::{Config, app, telemetry};

#[derive(clap::Args)]
pub struct Args {
    /// Configuration file (default: ./rollcall.toml when present).
    #[arg(long, env = "ROLLCALL_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// People to create (DEMO-000001 …; they cannot log in).
    #[arg(long, default_value_t = 500)]
    pub people: usize,
    /// Days of attendance, ending yesterday.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// Seed: the same seed, people and days give the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also enroll every person with a random face template (to measure a large gallery:
    /// index load time, memory, search); no real photo matches them.
    #[arg(long)]
    pub faces: bool,
}

/// The most people and days one run writes.
const MAX_PEOPLE: usize = 1_000_000;
const MAX_DAYS: u32 = 3660;

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=MAX_PEOPLE).contains(&args.people), "--people must be 1 to {MAX_PEOPLE}");
    anyhow::ensure!((1..=MAX_DAYS).contains(&args.days), "--days must be 1 to {MAX_DAYS}");
    let config = Config::load(args.config.as_deref())?;
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let db = app::connect_and_migrate(&config).await?;
        anyhow::ensure!(
            !demo::exists(&db).await?,
            "this database holds demo data already (DEMO-000001): use a fresh database"
        );
        let calendar = Calendar::new(config.timezone, config.working_days);
        let password_hash = PasswordPool::new(1).hash(&random_token(24)).await?;
        let plan = DemoPlan {
            people: args.people,
            days: args.days,
            last_day: calendar.today().pred_opt().context("no yesterday")?,
            seed: args.seed,
            faces: args.faces.then(|| app::data_sealer(&config)).transpose()?,
        };
        let started = Instant::now();
        let data = demo::generate(&db, &calendar, &plan, &password_hash).await?;
        println!(
            "demo data: {} people{}, {} attendance logs from {} to {} in {:.1} s ({})",
            data.people,
            if args.faces { " with random face templates" } else { "" },
            data.logs,
            data.first_day,
            data.last_day,
            started.elapsed().as_secs_f64(),
            app::redact_url(&config.database_url()),
        );
        db.close().await;
        Ok(())
    })
}
