//! Leased work on a table: the task queue and the webhook outbox. A worker claims a row
//! under a lease and counts the attempt; the attempt number is the claim's fencing token.
//! Every later update of the row (heartbeat, outcome, release) is conditioned on it, so
//! a worker whose lease expired and whose row was claimed again changes nothing.

use chrono::{DateTime, Utc};
use sea_query::{Cond, DynIden, Expr, IntoIden, LockBehavior, LockType, Order, Query, SimpleExpr, UpdateStatement};

/// The columns that make a table a leased queue.
pub(super) struct LeasedTable {
    pub table: DynIden,
    pub id: DynIden,
    pub status: DynIden,
    pub attempts: DynIden,
    pub lease_until: DynIden,
    /// The status of a claimed row.
    pub claimed: &'static str,
}

/// Who holds a claimed row: its id and the attempt it was claimed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<Id> {
    pub id: Id,
    pub attempt: i64,
}

impl LeasedTable {
    pub fn new(
        table: impl IntoIden,
        id: impl IntoIden,
        status: impl IntoIden,
        attempts: impl IntoIden,
        lease_until: impl IntoIden,
        claimed: &'static str,
    ) -> Self {
        Self {
            table: table.into_iden(),
            id: id.into_iden(),
            status: status.into_iden(),
            attempts: attempts.into_iden(),
            lease_until: lease_until.into_iden(),
            claimed,
        }
    }

    /// Claimed rows whose lease has run out: their worker died or stalled.
    pub fn expired(&self, now: DateTime<Utc>) -> Cond {
        Cond::all()
            .add(Expr::col(self.status.clone()).eq(self.claimed))
            .add(Expr::col(self.lease_until.clone()).lt(now))
    }

    /// Takes the first row of `claimable` in `order` under a lease until `lease_until`,
    /// counting the attempt, and returns it. Concurrent claimers never get the same row:
    /// the update re-checks `claimable`, and on PostgreSQL the candidate row is locked
    /// with `FOR UPDATE SKIP LOCKED`, so claimers pass each other instead of queueing.
    /// The candidate is a scalar subquery (`id = (SELECT …)`), evaluated once: under
    /// `id IN (SELECT … SKIP LOCKED LIMIT 1)` PostgreSQL may run the subquery again for
    /// every row it scans and claim them all.
    pub fn claim(
        &self,
        claimable: Cond,
        order: &[DynIden],
        lease_until: DateTime<Utc>,
        also_set: Vec<(DynIden, SimpleExpr)>,
    ) -> UpdateStatement {
        let mut candidate = Query::select();
        candidate.column(self.id.clone()).from(self.table.clone()).cond_where(claimable.clone());
        for column in order {
            candidate.order_by(column.clone(), Order::Asc);
        }
        candidate.limit(1).lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        let mut values = vec![
            (self.status.clone(), self.claimed.into()),
            (self.attempts.clone(), Expr::col(self.attempts.clone()).add(1)),
            (self.lease_until.clone(), lease_until.into()),
        ];
        values.extend(also_set);
        Query::update()
            .table(self.table.clone())
            .values(values)
            .and_where(
                Expr::col(self.id.clone())
                    .eq(SimpleExpr::SubQuery(None, Box::new(candidate.into_sub_query_statement()))),
            )
            .cond_where(claimable)
            .returning_all()
            .to_owned()
    }

    /// The row as long as `claim` still holds it: claimed, and not claimed again since.
    pub fn held<Id: Into<sea_query::Value> + Clone>(&self, claim: &Claim<Id>) -> Cond {
        Cond::all()
            .add(Expr::col(self.id.clone()).eq(claim.id.clone()))
            .add(Expr::col(self.status.clone()).eq(self.claimed))
            .add(Expr::col(self.attempts.clone()).eq(claim.attempt))
    }

    /// An update of the row by the holder of `claim`; it changes nothing once the claim is lost.
    pub fn update_held<Id: Into<sea_query::Value> + Clone>(
        &self,
        claim: &Claim<Id>,
        values: Vec<(DynIden, SimpleExpr)>,
    ) -> UpdateStatement {
        Query::update().table(self.table.clone()).values(values).cond_where(self.held(claim)).to_owned()
    }

    /// Extends the lease of a held row to `lease_until`.
    pub fn extend<Id: Into<sea_query::Value> + Clone>(
        &self,
        claim: &Claim<Id>,
        lease_until: DateTime<Utc>,
    ) -> UpdateStatement {
        self.update_held(claim, vec![(self.lease_until.clone(), lease_until.into())])
    }
}
