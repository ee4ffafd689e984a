//! Which roles a token may name. The server's role must be able to switch
//! to it (`pg_has_role ... 'MEMBER'`), and it must not be privileged: a
//! superuser, a `BYPASSRLS` role, the server's own role, or a role that owns
//! a live table (or is a member of its owner), since each of those reads
//! past row-level security. A privileged role is allowed only when
//! `--jwt-roles` names it (the operator said so; the server warns at start).
//! Tokens are also refused while the server itself logs in as a privileged
//! role without `--allow-privileged-login` (see [`LoginCheck`]).
//!
//! PostgreSQL is asked once per role; the answer is remembered, in a memory
//! bounded at `MAX_CHECKED_ROLES`.

use std::collections::HashMap;
use std::sync::Mutex;

use diesel::QueryableByName;
use diesel::sql_types::{Array, Bool, Text};
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::error::{AuthError, Privilege};

/// Roles remembered as checked (allowed or not) before the memory is reset.
const MAX_CHECKED_ROLES: usize = 1_000;

/// What PostgreSQL says of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It exists, the server may switch to it, and it has no privilege.
    Usable,
    /// It does not exist, or the server's role may not switch to it.
    Unknown,
    /// The server may switch to it, but it reads past row-level security.
    Privileged(Privilege),
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Bool)]
    member: bool,
    #[diesel(sql_type = Bool)]
    superuser: bool,
    #[diesel(sql_type = Bool)]
    bypassrls: bool,
    #[diesel(sql_type = Bool)]
    server: bool,
    #[diesel(sql_type = Bool)]
    owner: bool,
}

/// One query: what `role` is, for a server serving `tables`.
const VERDICT_SQL: &str = "SELECT pg_has_role(current_user, r.oid, 'MEMBER') AS member, \
        r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, \
        r.rolname IN (current_user, session_user) AS server, \
        EXISTS (SELECT 1 FROM unnest($2::text[]) t JOIN pg_class c ON c.oid = to_regclass(t) \
                 WHERE pg_has_role(r.oid, c.relowner, 'MEMBER')) AS owner \
     FROM pg_roles r WHERE r.rolname = $1";

/// Asks PostgreSQL what `role` is.
pub async fn verdict(
    conn: &mut AsyncPgConnection,
    role: &str,
    tables: &[String],
) -> Result<Verdict, diesel::result::Error> {
    let rows: Vec<Row> = diesel::sql_query(VERDICT_SQL)
        .bind::<Text, _>(role)
        .bind::<Array<Text>, _>(tables)
        .load(conn)
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(Verdict::Unknown);
    };
    Ok(if !row.member {
        Verdict::Unknown
    } else if row.superuser {
        Verdict::Privileged(Privilege::Superuser)
    } else if row.bypassrls {
        Verdict::Privileged(Privilege::BypassRls)
    } else if row.server {
        Verdict::Privileged(Privilege::Server)
    } else if row.owner {
        Verdict::Privileged(Privilege::Owner)
    } else {
        Verdict::Usable
    })
}

/// Whether the role the server logs in as reads past row-level security,
/// and as whom it logs in.
#[derive(Debug, QueryableByName)]
pub struct LoginCheck {
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Bool)]
    pub superuser: bool,
    #[diesel(sql_type = Bool)]
    pub bypassrls: bool,
}

impl LoginCheck {
    pub async fn of(conn: &mut AsyncPgConnection) -> Result<LoginCheck, diesel::result::Error> {
        diesel::sql_query(
            "SELECT rolname::text AS role, rolsuper AS superuser, rolbypassrls AS bypassrls \
               FROM pg_roles WHERE rolname = session_user",
        )
        .get_result(conn)
        .await
    }

    /// What makes the login privileged, if anything.
    pub fn privilege(&self) -> Option<Privilege> {
        if self.superuser {
            Some(Privilege::Superuser)
        } else if self.bypassrls {
            Some(Privilege::BypassRls)
        } else {
            None
        }
    }
}

/// The roles checked so far, and what each is.
#[derive(Default)]
pub(super) struct RoleCheck {
    /// Roles checked against PostgreSQL, and their verdicts. Owned by the
    /// `Authenticator`; taken briefly by `check`, never held across an
    /// `.await`; never closed (it lives as long as the server).
    checked: Mutex<HashMap<String, Verdict>>,
    /// The live tables, whose owners' roles are privileged.
    tables: Vec<String>,
}

impl RoleCheck {
    pub(super) fn new(tables: Vec<String>) -> RoleCheck {
        RoleCheck {
            checked: Mutex::default(),
            tables,
        }
    }

    /// Whether a token may use `role`: it exists, the server may switch to
    /// it, and it is not privileged unless `explicit` (named by
    /// `--jwt-roles`). Remembered once checked.
    pub(super) async fn check(
        &self,
        pool: &Pool<AsyncPgConnection>,
        role: &str,
        explicit: bool,
    ) -> Result<(), AuthError> {
        let known = self.lock().get(role).copied();
        let verdict = match known {
            Some(verdict) => verdict,
            None => {
                let mut conn = pool.get().await.map_err(|_| AuthError::Unavailable)?;
                let verdict = verdict(&mut conn, role, &self.tables)
                    .await
                    .map_err(|_| AuthError::Unavailable)?;
                let mut checked = self.lock();
                if checked.len() >= MAX_CHECKED_ROLES {
                    checked.clear();
                }
                checked.insert(role.to_owned(), verdict);
                verdict
            }
        };
        match verdict {
            Verdict::Usable => Ok(()),
            Verdict::Privileged(_) if explicit => Ok(()),
            Verdict::Privileged(why) => Err(AuthError::PrivilegedRole(role.to_owned(), why)),
            Verdict::Unknown => Err(AuthError::UnknownRole(role.to_owned())),
        }
    }

    /// The live tables the check looks at.
    pub(super) fn tables(&self) -> &[String] {
        &self.tables
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verdict>> {
        // Each critical section is one lookup or insert.
        self.checked.lock().unwrap_or_else(|p| p.into_inner())
    }
}
