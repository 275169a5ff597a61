//! The `audit_logs` table: append-only record of security-relevant actions.

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Iden, OnConflict, Order, Query};

use super::{Alias, Db, Exec, StoreResult};

#[derive(Iden)]
enum AuditLogs {
    Table,
    Id,
    Timestamp,
    Action,
    UserId,
    IpAddress,
    UserAgent,
    Success,
    Severity,
    Details,
    TaskId,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub action: String,
    pub user_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub success: bool,
    pub severity: String,
    /// JSON object.
    pub details: String,
}

pub struct NewAuditRecord {
    /// The task the entry reports on: one entry per task and action.
    pub task_id: Option<String>,
    pub action: String,
    pub user_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub success: bool,
    pub severity: String,
    pub details: String,
}

#[derive(Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub user_id: Option<String>,
    pub severity: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub success: Option<bool>,
}

pub async fn insert(db: &impl Exec, record: NewAuditRecord) -> StoreResult<()> {
    let statement = Query::insert()
        .into_table(AuditLogs::Table)
        .columns([
            AuditLogs::Timestamp,
            AuditLogs::Action,
            AuditLogs::UserId,
            AuditLogs::IpAddress,
            AuditLogs::UserAgent,
            AuditLogs::Success,
            AuditLogs::Severity,
            AuditLogs::Details,
            AuditLogs::TaskId,
        ])
        .values_panic([
            Utc::now().into(),
            record.action.into(),
            record.user_id.into(),
            record.ip_address.into(),
            record.user_agent.into(),
            record.success.into(),
            record.severity.into(),
            record.details.into(),
            record.task_id.into(),
        ])
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .to_owned();
    db.execute(&statement).await.map(drop)
}

/// One page of entries, newest first, and the total count.
pub async fn list(db: &Db, filter: &AuditFilter, limit: u64, offset: u64) -> StoreResult<(Vec<AuditRecord>, i64)> {
    let mut condition = Cond::all();
    if let Some(action) = &filter.action {
        condition = condition.add(Expr::col(AuditLogs::Action).eq(action.as_str()));
    }
    if let Some(user_id) = &filter.user_id {
        condition = condition.add(Expr::col(AuditLogs::UserId).eq(user_id.as_str()));
    }
    if let Some(severity) = &filter.severity {
        condition = condition.add(Expr::col(AuditLogs::Severity).eq(severity.as_str()));
    }
    if let Some(from) = filter.from {
        condition = condition.add(Expr::col(AuditLogs::Timestamp).gte(from));
    }
    if let Some(to) = filter.to {
        condition = condition.add(Expr::col(AuditLogs::Timestamp).lt(to));
    }
    if let Some(success) = filter.success {
        condition = condition.add(Expr::col(AuditLogs::Success).eq(success));
    }
    let page = Query::select()
        .column(sea_query::Asterisk)
        .from(AuditLogs::Table)
        .cond_where(condition.clone())
        .order_by(AuditLogs::Id, Order::Desc)
        .limit(limit)
        .offset(offset)
        .to_owned();
    let count = Query::select()
        .expr_as(Expr::col(AuditLogs::Id).count(), Alias::Count)
        .from(AuditLogs::Table)
        .cond_where(condition)
        .to_owned();
    Ok((db.fetch_all(&page).await?, db.count(&count).await?))
}

/// Deletes the entries older than `cutoff`; how many went.
pub async fn delete_before(db: &Db, cutoff: DateTime<Utc>) -> StoreResult<u64> {
    let statement =
        Query::delete().from_table(AuditLogs::Table).and_where(Expr::col(AuditLogs::Timestamp).lt(cutoff)).to_owned();
    db.execute(&statement).await
}
