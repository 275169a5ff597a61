//! People: roles, and the parsed fields a user record is made of. Constructors are the
//! only way in, so a value of these types is always valid.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::attendance_counts;
use crate::domain::calendar::Calendar;
use crate::store;

/// What a person or an API key may do. Admins manage everything; faculty and students
/// see their own records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Faculty,
    Student,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Faculty => "faculty",
            Self::Student => "student",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "admin" => Ok(Self::Admin),
            "faculty" => Ok(Self::Faculty),
            "student" => Ok(Self::Student),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// A field that failed validation, with a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// An e-mail address, trimmed and lower-cased: unique case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            })
            && !email.chars().any(char::is_whitespace);
        if valid { Ok(Self(email)) } else { Err(Invalid::new("email", "must be a valid e-mail address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The institution's identifier for a person (`FAC001`, `STU1234`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeId(String);

impl EmployeeId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let id = raw.trim();
        let valid = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(id.to_owned()))
        } else {
            Err(Invalid::new("employee_id", "must be 1-64 letters, digits, '-', '_' or '.'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed by a person, checked for length before it is hashed.
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let chars = raw.chars().count();
        if chars < Self::MIN_LEN {
            Err(Invalid::new("password", format!("must be at least {} characters", Self::MIN_LEN)))
        } else if chars > Self::MAX_LEN {
            Err(Invalid::new("password", format!("must be at most {} characters", Self::MAX_LEN)))
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A name or department: trimmed, bounded.
pub fn parse_text(field: &'static str, raw: &str, max_len: usize) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.chars().count() > max_len {
        return Err(Invalid::new(field, format!("must be at most {max_len} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// Applies `changes` to user `id` in one transaction; a deactivation also ends the
/// person's sessions and their enrollments still queued or running, and a change of
/// activity is added to the index feed for every process to apply. `None` when there is
/// no such user.
pub async fn apply_changes(
    db: &store::Db,
    calendar: &Calendar,
    id: i64,
    changes: store::users::UserChanges,
) -> store::StoreResult<Option<store::users::UserRecord>> {
    let deactivating = changes.is_active == Some(false);
    let tx = db.begin().await?;
    let Some(before) = store::users::lock(&tx, id).await? else {
        return Ok(None);
    };
    let updated = store::users::update(&tx, id, changes).await?;
    if let Some(after) = &updated {
        attendance_counts::move_person(&tx, calendar, &before, after).await?;
    }
    if updated.is_some() && deactivating {
        store::refresh_tokens::revoke_all_for_user(&tx, id).await?;
        store::tasks::cancel_enrollments(&tx, id, "the person was deactivated before the enrollment ran").await?;
    }
    if updated.as_ref().is_some_and(|after| after.is_active != before.is_active) {
        store::face_index_changes::record(&tx, id).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  John.Doe@College.EDU ").unwrap().as_str(), "john.doe@college.edu");
        for bad in ["", "john", "@college.edu", "john@", "john@college", "jo hn@college.edu"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn employee_ids_are_bounded_and_plain() {
        assert_eq!(EmployeeId::parse(" FAC001 ").unwrap().as_str(), "FAC001");
        for bad in ["", "a b", "x/y", &"x".repeat(65)] {
            assert!(EmployeeId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_parse_only_known_names() {
        assert_eq!(Role::try_from("faculty".to_owned()), Ok(Role::Faculty));
        assert!(Role::try_from("root".to_owned()).is_err());
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("long enough").is_ok());
    }
}
