//! REST request and response bodies for writes (`/api/items`, `/api/tasks`).
//!
//! Writes are ordinary INSERT/UPDATE/DELETE statements: their live updates reach
//! clients through the trigger like any other write.

use chrono::NaiveDate;
use diesel::prelude::{AsChangeset, Insertable};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use ts_rs::TS;

use crate::rows::TaskStatus;
use crate::tables::{items, tasks};
use crate::wire::ErrorCode;

/// Longest item name and task title, in characters (matches the SQL CHECK).
pub const MAX_TITLE: usize = 200;
/// Longest assignee, in characters (matches the SQL CHECK).
pub const MAX_ASSIGNEE: usize = 100;

/// Body of `POST /api/items`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema, Insertable)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = items)]
pub struct NewItem {
    pub name: String,
}

/// Body of `PATCH /api/items/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema, AsChangeset)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = items)]
pub struct ItemPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
}

/// Body of `POST /api/tasks`. Omitted fields take the column defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema, Insertable)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = tasks)]
pub struct NewTask {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status: Option<TaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub priority: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub due_date: Option<NaiveDate>,
}

/// Body of `PATCH /api/tasks/{id}`. A missing field is left alone; `null`
/// clears a nullable field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema, AsChangeset)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = tasks)]
pub struct TaskPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub status: Option<TaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub priority: Option<i16>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional)]
    #[schemars(with = "Option<String>")]
    pub assignee: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional)]
    #[schemars(with = "Option<NaiveDate>")]
    pub due_date: Option<Option<NaiveDate>>,
}

/// Distinguishes a present `null` (`Some(None)`) from a missing field (`None`,
/// via `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The body of every non-2xx REST response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ApiError {
    pub code: ErrorCode,
    /// A human-readable explanation; never internal error text.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
}

/// A field-level validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn check_title(field: &'static str, value: &str, max: usize) -> Result<(), Invalid> {
    let len = value.trim().chars().count();
    if len == 0 {
        return Err(Invalid {
            field,
            message: format!("{field} must not be empty"),
        });
    }
    if value.chars().count() > max {
        return Err(Invalid {
            field,
            message: format!("{field} must be at most {max} characters"),
        });
    }
    if value.contains('\0') {
        return Err(Invalid {
            field,
            message: format!("{field} must not contain NUL characters"),
        });
    }
    Ok(())
}

fn check_priority(priority: Option<i16>) -> Result<(), Invalid> {
    match priority {
        Some(p) if !(0..=3).contains(&p) => Err(Invalid {
            field: "priority",
            message: "priority must be 0 to 3".into(),
        }),
        _ => Ok(()),
    }
}

impl NewItem {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_title("name", &self.name, MAX_TITLE)
    }
}

impl ItemPatch {
    pub fn validate(&self) -> Result<(), Invalid> {
        match &self.name {
            Some(name) => check_title("name", name, MAX_TITLE),
            None => Err(Invalid {
                field: "name",
                message: "nothing to update: give name".into(),
            }),
        }
    }
}

impl NewTask {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_title("title", &self.title, MAX_TITLE)?;
        check_priority(self.priority)?;
        if let Some(a) = &self.assignee {
            check_title("assignee", a, MAX_ASSIGNEE)?;
        }
        Ok(())
    }
}

impl TaskPatch {
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(t) = &self.title {
            check_title("title", t, MAX_TITLE)?;
        }
        check_priority(self.priority)?;
        if let Some(Some(a)) = &self.assignee {
            check_title("assignee", a, MAX_ASSIGNEE)?;
        }
        let empty = self.title.is_none()
            && self.status.is_none()
            && self.priority.is_none()
            && self.assignee.is_none()
            && self.due_date.is_none();
        if empty {
            return Err(Invalid {
                field: "body",
                message: "nothing to update: give at least one field".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_distinguishes_null_from_missing() {
        let p: TaskPatch = serde_json::from_str(r#"{"assignee":null}"#).unwrap();
        assert_eq!(p.assignee, Some(None));
        let p: TaskPatch = serde_json::from_str(r#"{"title":"x"}"#).unwrap();
        assert_eq!(p.assignee, None);
        let p: TaskPatch = serde_json::from_str(r#"{"assignee":"bob"}"#).unwrap();
        assert_eq!(p.assignee, Some(Some("bob".into())));
    }

    #[test]
    fn validation() {
        assert!(NewItem { name: " ".into() }.validate().is_err());
        assert!(
            NewItem {
                name: "x".repeat(201)
            }
            .validate()
            .is_err()
        );
        assert!(NewItem { name: "ok".into() }.validate().is_ok());
        let t: NewTask = serde_json::from_str(r#"{"title":"t","priority":9}"#).unwrap();
        assert_eq!(t.validate().unwrap_err().field, "priority");
        let p: TaskPatch = serde_json::from_str("{}").unwrap();
        assert!(p.validate().is_err());
        assert!(serde_json::from_str::<NewTask>(r#"{"title":"t","status":"nope"}"#).is_err());
    }
}
