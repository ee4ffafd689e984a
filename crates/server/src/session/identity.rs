//! Who a connection is, over its life: the security context its
//! subscriptions read in, when its token expires, and how long it may stay
//! without authenticating.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use tokio::time::Instant;

use crate::auth::{Auth, AuthError, Identity};
use crate::engine::Context;

/// Time the role check may take before the database counts as unavailable.
const ROLE_CHECK: Duration = Duration::from_secs(3);

#[derive(Debug)]
enum State {
    /// Authentication is off: the server's own context.
    Open(Arc<Context>),
    /// A token (or the anonymous role) was accepted.
    Known(Identity),
    /// No identity yet, or the token expired: only `auth` is accepted, until
    /// the deadline.
    Waiting(Instant),
}

/// A connection's identity.
#[derive(Debug)]
pub struct Login {
    auth: Auth,
    pool: Pool<AsyncPgConnection>,
    timeout: Duration,
    state: State,
    /// Whether the current identity's role has passed the role check
    /// (a token's when it arrives; the anonymous role's on first use).
    checked: bool,
}

/// What an accepted token changed.
#[derive(Debug)]
pub struct Accepted {
    pub role: String,
    pub expires_at: u64,
    /// The context changed: subscriptions move to the new one.
    pub moved: bool,
}

impl Login {
    pub fn new(auth: Auth, pool: Pool<AsyncPgConnection>, timeout: Duration) -> Login {
        let state = match &auth {
            None => State::Open(Arc::new(Context::default())),
            Some(auth) => match auth.anonymous() {
                Some(anon) => State::Known(anon.clone()),
                None => State::Waiting(Instant::now() + timeout),
            },
        };
        Login {
            auth,
            pool,
            timeout,
            state,
            checked: false,
        }
    }

    /// The context reads run in; `None` until the connection authenticates.
    pub fn ctx(&self) -> Option<Arc<Context>> {
        match &self.state {
            State::Open(ctx) => Some(Arc::clone(ctx)),
            State::Known(id) => Some(Arc::clone(&id.ctx)),
            State::Waiting(_) => None,
        }
    }

    /// Checks the current identity's role if it has not been (the
    /// anonymous role, which no token brought): the same rule as for a
    /// token's role. Remembered by the authenticator, so this costs a
    /// lookup after the first connection.
    pub async fn ensure_checked(&mut self) -> Result<(), AuthError> {
        if self.checked {
            return Ok(());
        }
        if let (Some(auth), State::Known(id)) = (&self.auth, &self.state) {
            tokio::time::timeout(ROLE_CHECK, auth.check_role(&self.pool, &id.role))
                .await
                .map_err(|_| AuthError::Unavailable)??;
        }
        self.checked = true;
        Ok(())
    }

    /// When an unauthenticated connection is closed.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) => Some(at),
            _ => None,
        }
    }

    /// When the current token expires. A token may name any `exp`, up to
    /// 2^64 - 1 seconds: past what an `Instant` can hold it is never.
    pub fn expiry(&self) -> Option<Instant> {
        match &self.state {
            State::Known(id) => id
                .remaining()
                .and_then(|left| Instant::now().checked_add(left)),
            _ => None,
        }
    }

    /// The token's subject, whose share of the server's budgets this
    /// connection draws on; `None` when it has none (then the connection is
    /// its own identity).
    pub fn subject(&self) -> Option<&str> {
        match &self.state {
            State::Known(id) => id.subject.as_deref(),
            _ => None,
        }
    }

    /// Checks `token`; on success the connection has its identity (and the
    /// caller moves subscriptions when the context changed).
    pub async fn login(&mut self, token: &str) -> Result<Accepted, AuthError> {
        let Some(auth) = self.auth.clone() else {
            // Authentication is off: nothing to check, nothing changes.
            return Ok(Accepted {
                role: String::new(),
                expires_at: 0,
                moved: false,
            });
        };
        let identity = auth.verify(token)?;
        tokio::time::timeout(ROLE_CHECK, auth.check_role(&self.pool, &identity.role))
            .await
            .map_err(|_| AuthError::Unavailable)??;
        let moved = self.ctx().is_some_and(|ctx| ctx != identity.ctx);
        let accepted = Accepted {
            role: identity.role.clone(),
            expires_at: identity.expires_at.unwrap_or(0),
            moved,
        };
        self.state = State::Known(identity);
        self.checked = true;
        Ok(accepted)
    }

    /// The token expired: back to anonymous when the server has that role,
    /// else waiting for a new token.
    pub fn expire(&mut self) {
        self.checked = false;
        self.state = match self.auth.as_ref().and_then(|a| a.anonymous()) {
            Some(anon) => State::Known(anon.clone()),
            None => State::Waiting(Instant::now() + self.timeout),
        };
    }
}
