//! The `users` table.

use chrono::{DateTime, Utc};
use sea_query::{Cond, Expr, Func, Iden, Order, Query, SimpleExpr};

use super::{Alias, Db, Exec, StoreResult};
use crate::domain::users::Role;

#[derive(Iden)]
pub(crate) enum Users {
    Table,
    Id,
    EmployeeId,
    Email,
    FirstName,
    LastName,
    Role,
    Department,
    PasswordHash,
    IsActive,
    FaceEnrolled,
    TokensValidAfter,
    CreatedAt,
    UpdatedAt,
    LastLogin,
}

const UNIQUE_FIELDS: &[&str] = &["employee_id", "email"];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: i64,
    pub employee_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub department: String,
    pub password_hash: String,
    pub is_active: bool,
    pub face_enrolled: bool,
    /// Tokens issued before this instant are refused (deactivation, revocation).
    pub tokens_valid_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

impl UserRecord {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name).trim().to_owned()
    }
}

pub struct NewUser {
    pub employee_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub department: String,
    pub password_hash: String,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Default)]
pub struct UserChanges {
    pub employee_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub role: Option<Role>,
    pub department: Option<String>,
    pub password_hash: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub department: Option<String>,
    /// Matched case-insensitively against first name, last name, full name, e-mail and employee id.
    pub search: Option<String>,
}

pub async fn insert(db: &Db, user: NewUser) -> StoreResult<UserRecord> {
    let statement = Query::insert()
        .into_table(Users::Table)
        .columns(insert_columns())
        .values_panic(insert_values(user))
        .returning_all()
        .to_owned();
    db.fetch_one_unique(&statement, UNIQUE_FIELDS).await
}

/// Inserts many users in one statement (demo data, imports); keep batches to a few
/// hundred, under the backends' limits on parameters.
pub async fn insert_many(db: &impl Exec, users: Vec<NewUser>) -> StoreResult<Vec<UserRecord>> {
    let mut statement = Query::insert();
    statement.into_table(Users::Table).columns(insert_columns()).returning_all();
    for user in users {
        statement.values_panic(insert_values(user));
    }
    db.fetch_all(&statement).await
}

fn insert_columns() -> [Users; 12] {
    [
        Users::EmployeeId,
        Users::Email,
        Users::FirstName,
        Users::LastName,
        Users::Role,
        Users::Department,
        Users::PasswordHash,
        Users::IsActive,
        Users::FaceEnrolled,
        Users::TokensValidAfter,
        Users::CreatedAt,
        Users::UpdatedAt,
    ]
}

fn insert_values(user: NewUser) -> [sea_query::SimpleExpr; 12] {
    let now = Utc::now();
    [
        user.employee_id.into(),
        user.email.into(),
        user.first_name.into(),
        user.last_name.into(),
        user.role.as_str().into(),
        user.department.into(),
        user.password_hash.into(),
        true.into(),
        false.into(),
        now.into(),
        now.into(),
        now.into(),
    ]
}

pub async fn find_by_id(db: &impl Exec, id: i64) -> StoreResult<Option<UserRecord>> {
    find_where(db, Expr::col(Users::Id).eq(id)).await
}

pub async fn find_by_email(db: &Db, email: &str) -> StoreResult<Option<UserRecord>> {
    find_where(db, Expr::col(Users::Email).eq(email)).await
}

pub async fn find_by_employee_id(db: &Db, employee_id: &str) -> StoreResult<Option<UserRecord>> {
    find_where(db, Expr::col(Users::EmployeeId).eq(employee_id)).await
}

/// The person's record, locked until the end of the transaction `db` on PostgreSQL
/// (`FOR UPDATE`; SQLite's transactions hold the database's write lock already): decisions
/// about one person made in concurrent transactions are taken one after the other.
pub async fn lock(db: &impl Exec, id: i64) -> StoreResult<Option<UserRecord>> {
    let statement = Query::select()
        .column(sea_query::Asterisk)
        .from(Users::Table)
        .and_where(Expr::col(Users::Id).eq(id))
        .lock(sea_query::LockType::Update)
        .to_owned();
    db.fetch_optional(&statement).await
}

async fn find_where(db: &impl Exec, condition: SimpleExpr) -> StoreResult<Option<UserRecord>> {
    let statement = Query::select().column(sea_query::Asterisk).from(Users::Table).and_where(condition).to_owned();
    db.fetch_optional(&statement).await
}

/// One page of users matching `filter`, ordered by id, and the total count.
pub async fn list(db: &Db, filter: &UserFilter, limit: u64, offset: u64) -> StoreResult<(Vec<UserRecord>, i64)> {
    let condition = filter_condition(filter);
    let page = Query::select()
        .column(sea_query::Asterisk)
        .from(Users::Table)
        .cond_where(condition.clone())
        .order_by(Users::Id, Order::Asc)
        .limit(limit)
        .offset(offset)
        .to_owned();
    let count = Query::select()
        .expr_as(Expr::col(Users::Id).count(), Alias::Count)
        .from(Users::Table)
        .cond_where(condition)
        .to_owned();
    Ok((db.fetch_all(&page).await?, db.count(&count).await?))
}

fn filter_condition(filter: &UserFilter) -> Cond {
    let mut condition = Cond::all();
    if let Some(role) = filter.role {
        condition = condition.add(Expr::col(Users::Role).eq(role.as_str()));
    }
    if let Some(department) = &filter.department {
        condition = condition.add(Expr::expr(Func::lower(Expr::col(Users::Department))).eq(department.to_lowercase()));
    }
    // Every word of the search must match a name, the e-mail or the employee id, so
    // "jane smi" finds Jane Smith.
    for word in filter.search.as_deref().unwrap_or_default().split_whitespace() {
        let pattern = format!("%{}%", escape_like(&word.to_lowercase()));
        let like = |column: Users| {
            Expr::expr(Func::lower(Expr::col(column))).like(sea_query::LikeExpr::new(pattern.clone()).escape('\\'))
        };
        condition = condition.add(
            Cond::any()
                .add(like(Users::FirstName))
                .add(like(Users::LastName))
                .add(like(Users::Email))
                .add(like(Users::EmployeeId)),
        );
    }
    condition
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

pub async fn update(db: &impl Exec, id: i64, changes: UserChanges) -> StoreResult<Option<UserRecord>> {
    let now = Utc::now();
    let mut values: Vec<(Users, SimpleExpr)> = vec![(Users::UpdatedAt, now.into())];
    let mut push = |column: Users, value: Option<SimpleExpr>| {
        if let Some(value) = value {
            values.push((column, value));
        }
    };
    push(Users::EmployeeId, changes.employee_id.map(Into::into));
    push(Users::Email, changes.email.map(Into::into));
    push(Users::FirstName, changes.first_name.map(Into::into));
    push(Users::LastName, changes.last_name.map(Into::into));
    push(Users::Role, changes.role.map(|r| r.as_str().into()));
    push(Users::Department, changes.department.map(Into::into));
    let password_changed = changes.password_hash.is_some();
    push(Users::PasswordHash, changes.password_hash.map(Into::into));
    let deactivated = changes.is_active == Some(false);
    push(Users::IsActive, changes.is_active.map(Into::into));
    if password_changed || deactivated {
        // Sessions opened before a password change or a deactivation end now.
        values.push((Users::TokensValidAfter, now.into()));
    }
    let statement = Query::update()
        .table(Users::Table)
        .values(values)
        .and_where(Expr::col(Users::Id).eq(id))
        .returning_all()
        .to_owned();
    // `fetch_one_unique` fails on zero rows: an update of a missing id is `None`.
    match db.fetch_one_unique::<UserRecord>(&statement, UNIQUE_FIELDS).await {
        Ok(user) => Ok(Some(user)),
        Err(super::StoreError::Database(sqlx::Error::RowNotFound)) => Ok(None),
        Err(other) => Err(other),
    }
}

pub async fn record_login(db: &Db, id: i64) -> StoreResult<()> {
    let statement = Query::update()
        .table(Users::Table)
        .value(Users::LastLogin, Utc::now())
        .and_where(Expr::col(Users::Id).eq(id))
        .to_owned();
    db.execute(&statement).await.map(drop)
}

pub async fn count_active_admins(db: &Db) -> StoreResult<i64> {
    let statement = Query::select()
        .expr_as(Expr::col(Users::Id).count(), Alias::Count)
        .from(Users::Table)
        .and_where(Expr::col(Users::Role).eq(Role::Admin.as_str()))
        .and_where(Expr::col(Users::IsActive).eq(true))
        .to_owned();
    db.count(&statement).await
}
