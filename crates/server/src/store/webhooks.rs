//! The `webhooks` and `webhook_deliveries` tables: registrations and the durable outbox.
//! A delivery is a row before it is an HTTP request.

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Iden, IntoIden, OnConflict, Order, Query, SimpleExpr};

use super::lease::{Claim, LeasedTable};
use super::{Alias, Db, Exec, StoreResult};

#[derive(Iden)]
enum Webhooks {
    Table,
    Id,
    Url,
    Events,
    Secret,
    IsActive,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(Iden)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    Event,
    EventKey,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastStatusCode,
    LastError,
    CreatedAt,
    DeliveredAt,
}

/// Waiting for its first or next attempt.
pub const PENDING: &str = "pending";
/// Claimed by a deliverer, under a lease.
pub const DELIVERING: &str = "delivering";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRecord {
    pub id: i64,
    pub url: String,
    /// Comma-separated event kinds.
    pub events: String,
    /// Sealed (encrypted) signing secret.
    pub secret: Vec<u8>,
    pub is_active: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookRecord {
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.events.split(',').filter(|name| !name.is_empty())
    }

    pub fn subscribes_to(&self, event: &str) -> bool {
        self.event_names().any(|name| name == event)
    }
}

/// A registration to insert or the full new state of one.
#[derive(Debug, Clone)]
pub struct WebhookFields {
    pub url: String,
    pub events: String,
    pub secret: Vec<u8>,
    pub is_active: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    pub event_key: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub async fn insert(db: &impl Exec, fields: WebhookFields, created_by: Option<String>) -> StoreResult<WebhookRecord> {
    let now = Utc::now();
    let statement = Query::insert()
        .into_table(Webhooks::Table)
        .columns([
            Webhooks::Url,
            Webhooks::Events,
            Webhooks::Secret,
            Webhooks::IsActive,
            Webhooks::CreatedBy,
            Webhooks::CreatedAt,
            Webhooks::UpdatedAt,
        ])
        .values_panic([
            fields.url.into(),
            fields.events.into(),
            fields.secret.into(),
            fields.is_active.into(),
            created_by.into(),
            now.into(),
            now.into(),
        ])
        .returning_all()
        .to_owned();
    db.fetch_one_unique(&statement, &[]).await
}

pub async fn find(db: &Db, id: i64) -> StoreResult<Option<WebhookRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Webhooks::Table)
        .and_where(Expr::col(Webhooks::Id).eq(id))
        .to_owned();
    db.fetch_optional(&statement).await
}

pub async fn list(db: &Db) -> StoreResult<Vec<WebhookRecord>> {
    let statement =
        Query::select().column(sea_query::Asterisk).from(Webhooks::Table).order_by(Webhooks::Id, Order::Asc).to_owned();
    db.fetch_all(&statement).await
}

pub async fn list_active(db: &impl Exec) -> StoreResult<Vec<WebhookRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Webhooks::Table)
        .and_where(Expr::col(Webhooks::IsActive).eq(true))
        .order_by(Webhooks::Id, Order::Asc)
        .to_owned();
    db.fetch_all(&statement).await
}

/// Replaces a registration's fields; `None` when there is no such webhook.
pub async fn update(db: &impl Exec, id: i64, fields: WebhookFields) -> StoreResult<Option<WebhookRecord>> {
    let statement = Query::update()
        .table(Webhooks::Table)
        .values([
            (Webhooks::Url, fields.url.into()),
            (Webhooks::Events, fields.events.into()),
            (Webhooks::Secret, fields.secret.into()),
            (Webhooks::IsActive, fields.is_active.into()),
            (Webhooks::UpdatedAt, Utc::now().into()),
        ])
        .and_where(Expr::col(Webhooks::Id).eq(id))
        .returning_all()
        .to_owned();
    db.fetch_optional(&statement).await
}

/// Deletes a registration and its delivery log; false when there is no such webhook.
pub async fn delete(db: &Db, id: i64) -> StoreResult<bool> {
    let deliveries = Query::delete()
        .from_table(WebhookDeliveries::Table)
        .and_where(Expr::col(WebhookDeliveries::WebhookId).eq(id))
        .to_owned();
    db.execute(&deliveries).await?;
    let statement = Query::delete().from_table(Webhooks::Table).and_where(Expr::col(Webhooks::Id).eq(id)).to_owned();
    Ok(db.execute(&statement).await? == 1)
}

/// Queues one delivery per webhook of `webhook_ids`. Idempotent: a webhook that already
/// has a delivery for `event_key` keeps it. Returns how many rows were added.
pub async fn enqueue(
    db: &impl Exec,
    webhook_ids: &[i64],
    event: &str,
    event_key: &str,
    payload: &str,
) -> StoreResult<u64> {
    if webhook_ids.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut statement = Query::insert();
    statement
        .into_table(WebhookDeliveries::Table)
        .columns([
            WebhookDeliveries::WebhookId,
            WebhookDeliveries::Event,
            WebhookDeliveries::EventKey,
            WebhookDeliveries::Payload,
            WebhookDeliveries::Status,
            WebhookDeliveries::NextAttemptAt,
            WebhookDeliveries::CreatedAt,
        ])
        .on_conflict(
            OnConflict::columns([WebhookDeliveries::WebhookId, WebhookDeliveries::EventKey]).do_nothing().to_owned(),
        );
    for &webhook_id in webhook_ids {
        statement.values_panic([
            webhook_id.into(),
            event.into(),
            event_key.into(),
            payload.into(),
            PENDING.into(),
            now.into(),
            now.into(),
        ]);
    }
    db.execute(&statement).await
}

/// The claim a deliverer holds on a delivery.
pub type DeliveryClaim = Claim<i64>;

fn leased() -> LeasedTable {
    LeasedTable::new(
        WebhookDeliveries::Table,
        WebhookDeliveries::Id,
        WebhookDeliveries::Status,
        WebhookDeliveries::Attempts,
        WebhookDeliveries::LeaseUntil,
        DELIVERING,
    )
}

impl DeliveryRecord {
    /// The claim of the deliverer that took this record from [`claim_next`].
    pub fn claim(&self) -> DeliveryClaim {
        Claim { id: self.id, attempt: self.attempts }
    }
}

/// A delivery a deliverer may take: pending and due, or claimed under a lease that has
/// expired (its deliverer died mid-request).
fn claimable(now: DateTime<Utc>) -> Cond {
    Cond::any()
        .add(
            Cond::all()
                .add(Expr::col(WebhookDeliveries::Status).eq(PENDING))
                .add(Expr::col(WebhookDeliveries::NextAttemptAt).lte(now)),
        )
        .add(leased().expired(now))
}

/// Takes the most overdue claimable delivery under a lease until `lease_until`, counting
/// the attempt; safe when several deliverers or processes claim at once.
pub async fn claim_next(db: &Db, lease_until: DateTime<Utc>) -> StoreResult<Option<DeliveryRecord>> {
    let order = [WebhookDeliveries::NextAttemptAt.into_iden(), WebhookDeliveries::Id.into_iden()];
    db.fetch_optional(&leased().claim(claimable(Utc::now()), &order, lease_until, Vec::new())).await
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        status_code: i64,
    },
    /// Try again at `next_attempt_at`.
    Retry {
        next_attempt_at: DateTime<Utc>,
        status_code: Option<i64>,
        error: String,
    },
    Failed {
        status_code: Option<i64>,
        error: String,
    },
}

/// Records the outcome of the attempt a deliverer claimed; false when the row is no
/// longer its own (deleted, or re-claimed after the lease expired).
pub async fn record_outcome(db: &Db, claim: &DeliveryClaim, outcome: Outcome) -> StoreResult<bool> {
    let none_time = Option::<DateTime<Utc>>::None;
    let values: Vec<(WebhookDeliveries, SimpleExpr)> = match outcome {
        Outcome::Delivered { status_code } => vec![
            (WebhookDeliveries::Status, DELIVERED.into()),
            (WebhookDeliveries::LastStatusCode, status_code.into()),
            (WebhookDeliveries::LastError, Option::<String>::None.into()),
            (WebhookDeliveries::DeliveredAt, Utc::now().into()),
            (WebhookDeliveries::LeaseUntil, none_time.into()),
        ],
        Outcome::Retry { next_attempt_at, status_code, error } => vec![
            (WebhookDeliveries::Status, PENDING.into()),
            (WebhookDeliveries::NextAttemptAt, next_attempt_at.into()),
            (WebhookDeliveries::LastStatusCode, status_code.into()),
            (WebhookDeliveries::LastError, error.into()),
            (WebhookDeliveries::LeaseUntil, none_time.into()),
        ],
        Outcome::Failed { status_code, error } => vec![
            (WebhookDeliveries::Status, FAILED.into()),
            (WebhookDeliveries::LastStatusCode, status_code.into()),
            (WebhookDeliveries::LastError, error.into()),
            (WebhookDeliveries::LeaseUntil, none_time.into()),
        ],
    };
    let values = values.into_iter().map(|(column, value)| (column.into_iden(), value)).collect();
    Ok(db.execute(&leased().update_held(claim, values)).await? == 1)
}

/// A page of a webhook's deliveries, newest first, and how many there are in all.
pub async fn deliveries(db: &Db, webhook_id: i64, limit: u64, offset: u64) -> StoreResult<(Vec<DeliveryRecord>, i64)> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(WebhookDeliveries::Table)
        .and_where(Expr::col(WebhookDeliveries::WebhookId).eq(webhook_id))
        .order_by(WebhookDeliveries::Id, Order::Desc)
        .limit(limit)
        .offset(offset)
        .to_owned();
    let rows = db.fetch_all(&statement).await?;
    let count = Query::select()
        .expr_as(Expr::col(WebhookDeliveries::Id).count(), Alias::Count)
        .from(WebhookDeliveries::Table)
        .and_where(Expr::col(WebhookDeliveries::WebhookId).eq(webhook_id))
        .to_owned();
    Ok((rows, db.count(&count).await?))
}
