//! The start-up checks of least privilege, with authentication on: the
//! server must not log in as a superuser or a `BYPASSRLS` role (unless
//! `--allow-privileged-login`), the anonymous role must not be privileged
//! (unless `--jwt-roles` names it), and a privileged role `--jwt-roles`
//! names is allowed, with a warning. A database that does not answer yet
//! defers the checks to the first token (`Authenticator::check_role` makes
//! the same ones).

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;

use super::error::AuthSetupError;
use super::roles::{LoginCheck, Verdict};
use super::verify::Authenticator;

/// How long start-up waits for the database to answer the checks.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the checks; an error stops the server with its message.
pub async fn audit(
    auth: &Authenticator,
    pool: &Pool<AsyncPgConnection>,
) -> Result<(), AuthSetupError> {
    match tokio::time::timeout(AUDIT_TIMEOUT, checks(auth, pool)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Deferred::Refused(err))) => Err(err),
        Ok(Err(Deferred::Unreachable)) | Err(_) => {
            tracing::warn!(
                "cannot check the database roles yet (the database does not answer); each token's role is checked when it arrives"
            );
            Ok(())
        }
    }
}

enum Deferred {
    Refused(AuthSetupError),
    Unreachable,
}

async fn checks(auth: &Authenticator, pool: &Pool<AsyncPgConnection>) -> Result<(), Deferred> {
    let mut conn = pool.get().await.map_err(|_| Deferred::Unreachable)?;
    let login = LoginCheck::of(&mut conn)
        .await
        .map_err(|_| Deferred::Unreachable)?;
    if let Some(why) = login.privilege() {
        if !auth.allows_privileged_login() {
            return Err(Deferred::Refused(AuthSetupError::PrivilegedLogin {
                role: login.role,
                what: why.describe(),
            }));
        }
        tracing::warn!(
            role = %login.role,
            "the server logs in as {} (--allow-privileged-login): row-level security rests on the role check alone",
            why.describe()
        );
    }
    if let Some(anon) = auth.anonymous() {
        let role = anon.role.clone();
        match auth
            .verdict(&mut conn, &role)
            .await
            .map_err(|_| Deferred::Unreachable)?
        {
            Verdict::Privileged(why) if !auth.lists(&role) => {
                return Err(Deferred::Refused(AuthSetupError::PrivilegedAnonRole {
                    role,
                    what: why.describe(),
                }));
            }
            Verdict::Unknown => {
                return Err(Deferred::Refused(AuthSetupError::UnknownAnonRole(role)));
            }
            _ => {}
        }
    }
    let listed: Vec<String> = auth.listed_roles().map(str::to_owned).collect();
    for role in listed {
        if let Verdict::Privileged(why) = auth
            .verdict(&mut conn, &role)
            .await
            .map_err(|_| Deferred::Unreachable)?
        {
            tracing::warn!(
                role = %role,
                "--jwt-roles names {role:?}, which is {}: tokens naming it read past row-level security",
                why.describe()
            );
        }
    }
    Ok(())
}
