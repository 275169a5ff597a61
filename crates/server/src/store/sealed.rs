//! Every column that holds sealed (encrypted) data, the [`Binding`] each value is sealed
//! for, and the paged reads and compare-and-swap writes that `rollcall rotate-data-key`
//! re-seals them with.

use sea_query::{Alias as Name, Expr, Order, Query, SimpleExpr};

use super::{Db, Exec, StoreResult};
use crate::crypto::Binding;

/// A sealed column: `table.sealed`, one value per `key`, bound to `table|<owner>|purpose`.
#[derive(Debug)]
pub struct SealedColumn {
    pub table: &'static str,
    /// The primary key, which pages and compare-and-swap writes go by.
    key: &'static str,
    /// The column whose value the binding names (the row's owner, e.g. the person).
    owner: &'static str,
    sealed: &'static str,
    purpose: &'static str,
    key_is_text: bool,
}

pub const FACE_TEMPLATES: SealedColumn = SealedColumn {
    table: "face_templates",
    key: "user_id",
    owner: "user_id",
    sealed: "template",
    purpose: "template",
    key_is_text: false,
};

/// Kept photos are bound to their person: they are replaced as a set.
pub const ENROLLMENT_IMAGES: SealedColumn = SealedColumn {
    table: "enrollment_images",
    key: "id",
    owner: "user_id",
    sealed: "image",
    purpose: "image",
    key_is_text: false,
};

pub const TASK_PAYLOADS: SealedColumn =
    SealedColumn { table: "tasks", key: "id", owner: "id", sealed: "payload", purpose: "payload", key_is_text: true };

pub const WEBHOOK_SECRETS: SealedColumn =
    SealedColumn { table: "webhooks", key: "id", owner: "id", sealed: "secret", purpose: "secret", key_is_text: false };

/// A face log's crop is bound to its log.
pub const ARRIVAL_EVIDENCE: SealedColumn = SealedColumn {
    table: "arrival_evidence",
    key: "attendance_id",
    owner: "attendance_id",
    sealed: "crop",
    purpose: "crop",
    key_is_text: false,
};

/// A photo sent with an incident report is bound to its incident.
pub const INCIDENT_IMAGES: SealedColumn = SealedColumn {
    table: "incident_images",
    key: "incident_id",
    owner: "incident_id",
    sealed: "image",
    purpose: "image",
    key_is_text: false,
};

/// A camera's stream URL, with the credentials in it.
pub const CAMERA_URLS: SealedColumn =
    SealedColumn { table: "cameras", key: "id", owner: "id", sealed: "url", purpose: "url", key_is_text: true };

/// An unknown visitor's likeness: the mean embedding of their sightings.
pub const VISITOR_EMBEDDINGS: SealedColumn = SealedColumn {
    table: "visitors",
    key: "number",
    owner: "number",
    sealed: "embedding",
    purpose: "embedding",
    key_is_text: false,
};

/// The best face an unknown visitor was seen with.
pub const VISITOR_CROPS: SealedColumn = SealedColumn {
    table: "visitors",
    key: "number",
    owner: "number",
    sealed: "crop",
    purpose: "crop",
    key_is_text: false,
};

/// One sighting's embedding is bound to its visitor: enrolling the visitor reads them as a set.
pub const SIGHTING_EMBEDDINGS: SealedColumn = SealedColumn {
    table: "visitor_sightings",
    key: "task_id",
    owner: "visitor_number",
    sealed: "embedding",
    purpose: "embedding",
    key_is_text: true,
};

pub const ALL: [&SealedColumn; 10] = [
    &FACE_TEMPLATES,
    &ENROLLMENT_IMAGES,
    &TASK_PAYLOADS,
    &WEBHOOK_SECRETS,
    &ARRIVAL_EVIDENCE,
    &INCIDENT_IMAGES,
    &CAMERA_URLS,
    &VISITOR_EMBEDDINGS,
    &VISITOR_CROPS,
    &SIGHTING_EMBEDDINGS,
];

impl SealedColumn {
    fn binding(&self, owner: impl std::fmt::Display) -> Binding {
        Binding::new(self.table, owner, self.purpose)
    }
}

/// What a person's face template is sealed for.
pub fn template_binding(user_id: i64) -> Binding {
    FACE_TEMPLATES.binding(user_id)
}

/// What a person's kept enrollment photos are sealed for.
pub fn enrollment_image_binding(user_id: i64) -> Binding {
    ENROLLMENT_IMAGES.binding(user_id)
}

/// What a queued task's input is sealed for.
pub fn task_payload_binding(task_id: &str) -> Binding {
    TASK_PAYLOADS.binding(task_id)
}

/// What a webhook's signing secret is sealed for.
pub fn webhook_secret_binding(webhook_id: i64) -> Binding {
    WEBHOOK_SECRETS.binding(webhook_id)
}

/// What the face crop of attendance log `attendance_id` is sealed for.
pub fn arrival_evidence_binding(attendance_id: i64) -> Binding {
    ARRIVAL_EVIDENCE.binding(attendance_id)
}

/// What the photo sent with incident `incident_id` is sealed for.
pub fn incident_image_binding(incident_id: i64) -> Binding {
    INCIDENT_IMAGES.binding(incident_id)
}

/// What camera `camera_id`'s stream URL is sealed for.
pub fn camera_url_binding(camera_id: &str) -> Binding {
    CAMERA_URLS.binding(camera_id)
}

/// What unknown visitor `number`'s likeness is sealed for.
pub fn visitor_embedding_binding(number: i64) -> Binding {
    VISITOR_EMBEDDINGS.binding(number)
}

/// What unknown visitor `number`'s best face is sealed for.
pub fn visitor_crop_binding(number: i64) -> Binding {
    VISITOR_CROPS.binding(number)
}

/// What the embedding of a sighting of visitor `number` is sealed for.
pub fn sighting_embedding_binding(number: i64) -> Binding {
    SIGHTING_EMBEDDINGS.binding(number)
}

/// A row's primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    Int(i64),
    Text(String),
}

impl From<&RowKey> for SimpleExpr {
    fn from(key: &RowKey) -> Self {
        match key {
            RowKey::Int(id) => (*id).into(),
            RowKey::Text(id) => id.clone().into(),
        }
    }
}

/// One sealed value as stored.
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub column: &'static SealedColumn,
    pub key: RowKey,
    pub binding: Binding,
    pub sealed: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct IntKeyed {
    key: i64,
    owner: i64,
    sealed: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct TextKeyed {
    key: String,
    owner: String,
    sealed: Vec<u8>,
}

/// Up to `limit` non-empty values of `column` with a key after `after`, in key order.
pub async fn page(
    db: &Db,
    column: &'static SealedColumn,
    after: Option<&RowKey>,
    limit: u64,
) -> StoreResult<Vec<SealedValue>> {
    let mut statement = Query::select();
    statement
        .expr_as(Expr::col(Name::new(column.key)), Name::new("key"))
        .expr_as(Expr::col(Name::new(column.sealed)), Name::new("sealed"))
        .from(Name::new(column.table))
        .and_where(Expr::col(Name::new(column.sealed)).ne(Vec::<u8>::new()))
        .order_by(Name::new(column.key), Order::Asc)
        .limit(limit);
    if let Some(after) = after {
        statement.and_where(Expr::col(Name::new(column.key)).gt(SimpleExpr::from(after)));
    }
    if column.key_is_text {
        // The owner may be a number (a sighting's visitor): read as text, it names the same binding.
        statement.expr_as(Expr::cust(format!("CAST({} AS TEXT)", column.owner)), Name::new("owner"));
        let rows: Vec<TextKeyed> = db.fetch_all(&statement).await?;
        return Ok(rows
            .into_iter()
            .map(|row| SealedValue {
                column,
                binding: column.binding(&row.owner),
                key: RowKey::Text(row.key),
                sealed: row.sealed,
            })
            .collect());
    }
    statement.expr_as(Expr::col(Name::new(column.owner)), Name::new("owner"));
    let rows: Vec<IntKeyed> = db.fetch_all(&statement).await?;
    Ok(rows
        .into_iter()
        .map(|row| SealedValue {
            column,
            binding: column.binding(row.owner),
            key: RowKey::Int(row.key),
            sealed: row.sealed,
        })
        .collect())
}

/// Replaces a value with its re-sealed form, only if it is still the value that was read
/// (compare and swap): false when the row changed or went meanwhile.
pub async fn replace(db: &Db, value: &SealedValue, resealed: Vec<u8>) -> StoreResult<bool> {
    let column = value.column;
    let statement = Query::update()
        .table(Name::new(column.table))
        .value(Name::new(column.sealed), resealed)
        .and_where(Expr::col(Name::new(column.key)).eq(SimpleExpr::from(&value.key)))
        .and_where(Expr::col(Name::new(column.sealed)).eq(value.sealed.clone()))
        .to_owned();
    Ok(db.execute(&statement).await? == 1)
}
