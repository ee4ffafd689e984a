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
    #[error(
        "the server logs in to PostgreSQL as {role}, {what}, with authentication on: every client's row-level security would rest on pglive's role check alone. \
Log in as a least-privileged authenticator role instead, as a superuser: \
CREATE ROLE pglive_authenticator LOGIN NOINHERIT PASSWORD '...'; GRANT <each role tokens name> TO pglive_authenticator; \
then use it in DATABASE_URL (the migrations create pglive_authenticator for the demo's roles; see README, \"Deploying with RLS\"). \
Or pass --allow-privileged-login to accept tokens anyway (benchmarks, tests)"
    )]
    PrivilegedLogin { role: String, what: &'static str },
    #[error(
        "--anon-role {role} is {what}, which reads past row-level security: every client without a token would. \
Use a role without privileges (the demo's pglive_anon), or name it in --jwt-roles too to allow it on purpose"
    )]
    PrivilegedAnonRole { role: String, what: &'static str },
    #[error(
        "--anon-role {0} does not exist, or the server's role may not switch to it (GRANT {0} TO <the server's role>)"
    )]
    UnknownAnonRole(String),
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
    #[error(
        "the role {0:?} may not be used by tokens: it is {what}, which reads past row-level security",
        what = .1.describe()
    )]
    PrivilegedRole(String, Privilege),
    #[error(
        "this server logs in to PostgreSQL as a privileged role, so it accepts no token; see its log"
    )]
    PrivilegedLogin,
    #[error("cannot check the token's role: the database is unavailable")]
    Unavailable,
}

/// Why a role reads past row-level security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Superuser,
    BypassRls,
    /// The role the server logs in as.
    Server,
    /// It owns a live table, or is a member of its owner.
    Owner,
}

impl Privilege {
    pub fn describe(self) -> &'static str {
        match self {
            Privilege::Superuser => "a superuser",
            Privilege::BypassRls => "a role with BYPASSRLS",
            Privilege::Server => "the role the server logs in as",
            Privilege::Owner => "the owner of a live table (or a member of it)",
        }
    }
}
