//! Whether the server's role may switch to a token's role: it exists and the
//! server's role is a member (`pg_has_role`). Asked of PostgreSQL once per
//! role and remembered, in a memory bounded at `MAX_CHECKED_ROLES`.

use std::collections::HashMap;
use std::sync::Mutex;

use diesel::QueryableByName;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use pglive_schema::sql::{Sql, SqlValue};

use super::error::AuthError;

/// Roles remembered as checked (allowed or not) before the memory is reset.
const MAX_CHECKED_ROLES: usize = 1_000;

/// The roles checked so far, and whether each may be used.
#[derive(Default)]
pub(super) struct RoleCheck {
    /// Roles checked against PostgreSQL, and whether they may be used.
    /// Owned by the `Authenticator`; taken briefly by `check`, never held
    /// across an `.await`; never closed (it lives as long as the server).
    checked: Mutex<HashMap<String, bool>>,
}

impl RoleCheck {
    /// Whether the server's role may switch to `role` (it exists and the
    /// server's role is a member). Remembered once checked.
    pub(super) async fn check(
        &self,
        pool: &Pool<AsyncPgConnection>,
        role: &str,
    ) -> Result<(), AuthError> {
        let known = self.lock().get(role).copied();
        let ok = match known {
            Some(ok) => ok,
            None => {
                let ok = may_become(pool, role).await?;
                let mut checked = self.lock();
                if checked.len() >= MAX_CHECKED_ROLES {
                    checked.clear();
                }
                checked.insert(role.to_owned(), ok);
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::UnknownRole(role.to_owned()))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        // Each critical section is one lookup or insert.
        self.checked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(QueryableByName)]
struct May {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    may: bool,
}

async fn may_become(pool: &Pool<AsyncPgConnection>, role: &str) -> Result<bool, AuthError> {
    let mut conn = pool.get().await.map_err(|_| AuthError::Unavailable)?;
    let mut sql = Sql::new(
        "SELECT coalesce((SELECT pg_has_role(current_user, r.oid, 'MEMBER') FROM pg_roles r WHERE r.rolname = ",
    );
    sql.bind(SqlValue::Text(role.to_owned()));
    sql.push("), false) AS may");
    let rows: Vec<May> = diesel_async::RunQueryDsl::load(sql, &mut conn)
        .await
        .map_err(|_| AuthError::Unavailable)?;
    Ok(rows.first().is_some_and(|r| r.may))
}
