//! `rollcall rotate-data-key`: a new data key, and every sealed value re-sealed with it.
//!
//! Crash-safe at every step, so a kill at any moment leaves every value openable:
//! 1. the key file becomes a ring, the new key first and the previous ones after it
//!    (written to a temporary file, synced, renamed over the old one);
//! 2. each value not yet under the new key is opened with the ring and written back
//!    re-sealed, compare-and-swap (only if the row still holds what was read), page by page;
//! 3. once a full pass finds nothing left, the ring is replaced by the new key alone.
//!
//! Interrupted after 1 or during 2, the server starts with the ring (it opens both kinds
//! of value and seals with the new key) and running the command again finishes the job.
//! Values that open with no key of the ring stop the command before 3: the previous keys
//! are kept and the rows are named.

use anyhow::Context as _;

use crate::app;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::store::Db;
use crate::store::sealed::{self, RowKey, SealedColumn, SealedValue};

/// Rows read at once.
const PAGE_SIZE: u64 = 200;
/// Full passes before giving up on rows that keep changing under the command.
const MAX_PASSES: usize = 5;
/// Rows named in the error when some do not open.
const NAMED_FAILURES: usize = 10;

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The id of the new key, as written into every value it seals.
    pub key_id: String,
    /// Values re-sealed with the new key.
    pub resealed: u64,
    /// Keys retired (the previous key, and any left by an interrupted rotation).
    pub retired_keys: usize,
}

/// Rotates the data key of the installation `config` describes. Stop the server first
/// (every process sharing the database): a running server keeps sealing with the key it
/// started with.
///
/// # Errors
/// When the key is set in the configuration rather than kept in the key file, when the
/// database or the key file cannot be read or written, or when some values open with no
/// key of the ring (they are named; the previous keys stay in the ring).
pub async fn rotate_data_key(config: &Config) -> anyhow::Result<Rotation> {
    anyhow::ensure!(
        config.data_key.is_none(),
        "the data key is set in the configuration (data_key / ROLLCALL_DATA_KEY); rotation rewrites the key file \
         {}: unset data_key to use that file",
        app::data_key_file(config).display()
    );
    let path = app::data_key_file(config);
    let previous = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the data key file {} (has the server run here yet?)", path.display()))?;
    let previous_ring = Sealer::from_key_ring(&previous).context("data_key")?;
    let db = app::connect_and_migrate(config).await?;
    let new_key = Sealer::generate_key();
    let ring_text = format!("{new_key}\n{}\n", previous.trim());
    app::replace_private_file(&path, ring_text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let ring = Sealer::from_key_ring(&ring_text).context("data_key")?;
    let resealed = reseal_everything(&db, &ring).await;
    db.close().await;
    let resealed = resealed?;
    app::replace_private_file(&path, format!("{new_key}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Rotation { key_id: ring.current_key_id().to_string(), resealed, retired_keys: previous_ring.key_count() })
}

/// Re-seals every value that is not under the ring's current key, until a pass finds none.
async fn reseal_everything(db: &Db, ring: &Sealer) -> anyhow::Result<u64> {
    let mut resealed = 0;
    for _ in 0..MAX_PASSES {
        let pass = reseal_pass(db, ring).await?;
        resealed += pass.resealed;
        if !pass.failed.is_empty() {
            anyhow::bail!("{}", describe_failures(&pass.failed));
        }
        if pass.resealed == 0 && pass.raced == 0 {
            return Ok(resealed);
        }
    }
    anyhow::bail!(
        "sealed values kept changing during the rotation: stop every server using this database and run the command again \
         (nothing is lost: the key file keeps the previous key)"
    )
}

#[derive(Default)]
struct Pass {
    resealed: u64,
    /// Rows that changed between the read and the write (re-read on the next pass).
    raced: u64,
    failed: Vec<(SealedValue, String)>,
}

async fn reseal_pass(db: &Db, ring: &Sealer) -> anyhow::Result<Pass> {
    let mut pass = Pass::default();
    for column in sealed::ALL {
        reseal_column(db, ring, column, &mut pass).await?;
    }
    Ok(pass)
}

async fn reseal_column(db: &Db, ring: &Sealer, column: &'static SealedColumn, pass: &mut Pass) -> anyhow::Result<()> {
    let mut after: Option<RowKey> = None;
    loop {
        let page = sealed::page(db, column, after.as_ref(), PAGE_SIZE)
            .await
            .with_context(|| format!("cannot read {}", column.table))?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.key.clone());
        for value in page {
            if ring.is_current(&value.sealed) {
                continue;
            }
            match ring.open(&value.sealed, &value.binding) {
                Ok(plaintext) => {
                    let fresh = ring.seal(&plaintext, &value.binding);
                    if sealed::replace(db, &value, fresh)
                        .await
                        .with_context(|| format!("cannot update {}", column.table))?
                    {
                        pass.resealed += 1;
                    } else {
                        pass.raced += 1;
                    }
                }
                Err(error) => pass.failed.push((value, error.to_string())),
            }
        }
    }
}

fn describe_failures(failed: &[(SealedValue, String)]) -> String {
    let named: Vec<&str> = failed.iter().take(NAMED_FAILURES).map(|(_, error)| error.as_str()).collect();
    format!(
        "{} sealed value(s) open with no key of the ring, so the previous key is kept in the key file: {}{}. \
         Erase or re-create those rows (e.g. erase and re-enroll the person) and run the command again",
        failed.len(),
        named.join("; "),
        if failed.len() > NAMED_FAILURES { "; …" } else { "" }
    )
}
