//! Identity: verifying JSON Web Tokens and turning their claims into the
//! security context that reads and writes run in.
//!
//! The algorithm is fixed by configuration (a token naming another is
//! refused, so `none` and HMAC-with-a-public-key confusion cannot happen);
//! `exp` is required, `nbf`, `iss` and `aud` are checked when present or
//! configured. A token's role must be allowed (`--jwt-roles`), exist in
//! PostgreSQL, be one the server's own role may switch to, and not be
//! privileged (a superuser, `BYPASSRLS`, the server's own role, a live
//! table's owner) unless `--jwt-roles` names it; and a server that logs in
//! as a privileged role accepts no token unless `--allow-privileged-login`
//! (`audit` checks all of it at start-up). The claims
//! that make up the context (by default all but `exp`, `iat`, `nbf` and
//! `jti`) are the only ones SQL sees, so a policy can never depend on a
//! claim that is not part of the group key.
//!
//! Tokens never appear in logs or errors: only why they were refused.
//!
//! The modules depend one way, lowest first: `bearer` (finding a token in a
//! request's headers) and `error` (why setup or a token fails) name no other;
//! `context` (claims → `Context`, and `Identity`) names none either; `keys`
//! (secrets, public keys, a JWKS) and `roles` (may the server's role switch
//! to a token's role, remembered) name only `error`; `mint` (signing
//! development tokens) names `error` and `keys`; `verify` (the
//! `Authenticator`) names them all but `bearer`; `audit` (the start-up
//! checks) names `error`, `roles` and `verify`.

mod audit;
mod bearer;
mod context;
mod error;
mod keys;
mod mint;
mod roles;
mod verify;

pub use audit::audit;
pub use bearer::bearer;
pub use context::{Identity, unix_now};
pub use error::{AuthError, AuthSetupError};
pub use keys::Secret;
pub use verify::{Auth, AuthConfig, Authenticator};
