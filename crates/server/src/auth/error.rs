//! Why the authentication configuration cannot be used, and why a token was
//! refused.

use jsonwebtoken::Algorithm;

/// Longest token accepted, in bytes.
pub(super) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why the authentication configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("give either --jwt-secret or --jwt-key-file, not both")]
    Both,
    #[error("cannot read the JWT key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("the JWT key file {0} is neither a PEM public key nor a JWKS: {1}")]
    KeyFormat(String, String),
    #[error("--jwt-algorithm {0:?} does not fit the key ({1})")]
    Algorithm(Algorithm, &'static str),
    #[error(
        "--anon-role needs a way to verify tokens (--jwt-secret or --jwt-key-file), or no authentication at all"
    )]
    AnonWithoutKeys,
}

/// Why a token was refused. Never carries the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token given, and this server has no anonymous role")]
    Missing,
    #[error("the token is over {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was refused: {0}")]
    Invalid(String),
    #[error("the token names no role (claim {0:?}) and this server has no anonymous role")]
    NoRole(String),
    #[error("the role {0:?} is not one this server lets tokens use")]
    RoleNotAllowed(String),
    #[error("the role {0:?} does not exist, or the server may not switch to it")]
    UnknownRole(String),
    #[error("cannot check the token's role: the database is unavailable")]
    Unavailable,
}
