//! Identity: verifying JSON Web Tokens and turning their claims into the
//! security context that reads and writes run in.
//!
//! The algorithm is fixed by configuration (a token naming another is
//! refused, so `none` and HMAC-with-a-public-key confusion cannot happen);
//! `exp` is required, `nbf`, `iss` and `aud` are checked when present or
//! configured. A token's role must be allowed (`--jwt-roles`), exist in
//! PostgreSQL and be one the server's own role may switch to. The claims
//! that make up the context (by default all but `exp`, `iat`, `nbf` and
//! `jti`) are the only ones SQL sees, so a policy can never depend on a
//! claim that is not part of the group key.
//!
//! Tokens never appear in logs or errors: only why they were refused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::QueryableByName;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pglive_schema::sql::{Sql, SqlValue};
use serde_json::{Map, Value};

use crate::engine::Context;

/// Longest token accepted, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Roles remembered as checked (allowed or not) before the memory is reset.
const MAX_CHECKED_ROLES: usize = 1_000;
/// Claims that change with every token and so never belong to a context.
const VOLATILE_CLAIMS: &[&str] = &["exp", "iat", "nbf", "jti"];

/// A secret from configuration; never printed.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// What verifying tokens needs, from configuration.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub secret: Option<Secret>,
    pub key_file: Option<std::path::PathBuf>,
    pub algorithm: Option<Algorithm>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub role_claim: String,
    pub roles: Vec<String>,
    pub anon_role: Option<String>,
    pub context_claims: Vec<String>,
}

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

/// Who a connection or request is: its context, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub ctx: Arc<Context>,
    pub role: String,
    /// Unix seconds; `None` for the anonymous role (no token to expire).
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Time left before the token expires.
    pub fn remaining(&self) -> Option<Duration> {
        let now = now_secs();
        self.expires_at
            .map(|exp| Duration::from_secs(exp.saturating_sub(now)))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Keys that verify tokens: one, or a JWKS chosen by the token's `kid`.
enum Keys {
    One(DecodingKey),
    Set(HashMap<String, (DecodingKey, Algorithm)>),
}

/// Verifies tokens. `None` in [`Auth`] means authentication is off: every
/// connection reads with the server's own role.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
    role_claim: String,
    roles: HashSet<String>,
    anon: Option<Identity>,
    context_claims: Vec<String>,
    /// For minting development tokens (HMAC secrets only).
    encoding: Option<(EncodingKey, Algorithm)>,
    /// Roles checked against PostgreSQL, and whether they may be used.
    /// Taken briefly by `check_role`; never held across an `.await`.
    checked: Mutex<HashMap<String, bool>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .field("role_claim", &self.role_claim)
            .finish_non_exhaustive()
    }
}

/// Authentication as configured: off, or an authenticator.
pub type Auth = Option<Arc<Authenticator>>;

/// The context of `role` with `claims` visible to SQL as canonical JSON.
pub fn context(role: Option<&str>, claims: Option<&Map<String, Value>>) -> Context {
    Context {
        role: role.map(Arc::from),
        claims: claims.map(|c| Arc::from(canonical(&Value::Object(c.clone())).as_str())),
    }
}

/// JSON with object keys sorted at every level: equal claims, equal text.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                let mut out = Map::new();
                for (k, v) in ordered {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // Keys are inserted in sorted order, which both map kinds of serde_json
    // keep.
    sorted(value).to_string()
}

impl Authenticator {
    /// Builds the authenticator, or `None` when no key is configured.
    pub fn new(config: &AuthConfig) -> Result<Auth, AuthSetupError> {
        let (keys, algorithm, encoding) = match (&config.secret, &config.key_file) {
            (Some(_), Some(_)) => return Err(AuthSetupError::Both),
            (None, None) => {
                if config.anon_role.is_some() {
                    return Err(AuthSetupError::AnonWithoutKeys);
                }
                return Ok(None);
            }
            (Some(secret), None) => {
                let alg = config.algorithm.unwrap_or(Algorithm::HS256);
                if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                    return Err(AuthSetupError::Algorithm(
                        alg,
                        "a secret verifies HS256, HS384 or HS512",
                    ));
                }
                let bytes = secret.expose().as_bytes();
                let decoding = DecodingKey::from_secret(bytes)
                    .map_err(|e| AuthSetupError::KeyFormat("--jwt-secret".into(), e.to_string()))?;
                let encoding = EncodingKey::from_secret(bytes)
                    .map_err(|e| AuthSetupError::KeyFormat("--jwt-secret".into(), e.to_string()))?;
                (Keys::One(decoding), alg, Some((encoding, alg)))
            }
            (None, Some(path)) => {
                let (keys, alg) = load_key_file(path, config.algorithm)?;
                (keys, alg, None)
            }
        };
        let mut validation = Validation::new(algorithm);
        if let Keys::Set(set) = &keys {
            validation.algorithms = set
                .values()
                .map(|(_, a)| *a)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
        }
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        if config.issuers.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&config.issuers);
        }
        if config.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&config.audiences);
        }
        let role_claim = if config.role_claim.is_empty() {
            "role".to_owned()
        } else {
            config.role_claim.clone()
        };
        let anon = config.anon_role.as_ref().map(|role| Identity {
            ctx: Arc::new(context(Some(role), Some(&Map::new()))),
            role: role.clone(),
            expires_at: None,
        });
        Ok(Some(Arc::new(Authenticator {
            keys,
            validation,
            role_claim,
            roles: config.roles.iter().cloned().collect(),
            anon,
            context_claims: config.context_claims.clone(),
            encoding,
            checked: Mutex::new(HashMap::new()),
        })))
    }

    /// The identity of a connection or request without a token, if the
    /// server allows those.
    pub fn anonymous(&self) -> Option<&Identity> {
        self.anon.as_ref()
    }

    /// Verifies `token` (signature, algorithm, times, issuer, audience) and
    /// builds its identity; the role still has to pass [`Self::check_role`].
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let key = match &self.keys {
            Keys::One(key) => key,
            Keys::Set(set) => {
                let kid = jsonwebtoken::decode_header(token)
                    .map_err(|e| AuthError::Invalid(e.to_string()))?
                    .kid
                    .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
                &set.get(&kid)
                    .ok_or_else(|| AuthError::Invalid("the token's key (kid) is unknown".into()))?
                    .0
            }
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::InvalidAlgorithm => AuthError::Invalid("algorithm not accepted".into()),
                ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
                ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience".into()),
                ErrorKind::MissingRequiredClaim(claim) => {
                    AuthError::Invalid(format!("the {claim} claim is missing"))
                }
                _ => AuthError::Invalid("not a valid token".into()),
            })?;
        let claims = data.claims;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| AuthError::Invalid("the exp claim is missing".into()))?;
        let role = match claims.get(&self.role_claim).and_then(Value::as_str) {
            Some(role) => role.to_owned(),
            None => match &self.anon {
                Some(anon) => anon.role.clone(),
                None => return Err(AuthError::NoRole(self.role_claim.clone())),
            },
        };
        if !self.roles.is_empty() && !self.roles.contains(&role) {
            return Err(AuthError::RoleNotAllowed(role));
        }
        let visible: Map<String, Value> = claims
            .into_iter()
            .filter(|(k, _)| {
                if self.context_claims.is_empty() {
                    !VOLATILE_CLAIMS.contains(&k.as_str())
                } else {
                    self.context_claims.contains(k)
                }
            })
            .collect();
        Ok(Identity {
            ctx: Arc::new(context(Some(&role), Some(&visible))),
            role,
            expires_at: Some(expires_at),
        })
    }

    /// Whether the server's role may switch to `role` (it exists and the
    /// server's role is a member). Remembered once checked.
    pub async fn check_role(
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

    /// A token for development and tests, signed with the configured
    /// secret; `None` when tokens are verified with a public key.
    pub fn mint(&self, claims: &Map<String, Value>) -> Option<String> {
        let (key, alg) = self.encoding.as_ref()?;
        jsonwebtoken::encode(&Header::new(*alg), claims, key).ok()
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

/// Loads a PEM public key or a JWKS, and the algorithm it verifies.
fn load_key_file(
    path: &Path,
    algorithm: Option<Algorithm>,
) -> Result<(Keys, Algorithm), AuthSetupError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| AuthSetupError::KeyFile(shown.clone(), e))?;
    let format = |e: String| AuthSetupError::KeyFormat(shown.clone(), e);
    if let Ok(set) = serde_json::from_slice::<JwkSet>(&bytes) {
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match (jwk.common.key_algorithm, algorithm) {
                (_, Some(alg)) => alg,
                (Some(ka), None) => ka.to_string().parse().map_err(|_| {
                    format(format!(
                        "key {kid} has an algorithm this server does not verify"
                    ))
                })?,
                (None, None) => {
                    return Err(format(format!(
                        "key {kid} names no algorithm; set --jwt-algorithm"
                    )));
                }
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format(e.to_string()))?;
            keys.insert(kid, (key, alg));
        }
        if keys.is_empty() {
            return Err(format("the JWKS has no key with a kid".into()));
        }
        let first = keys
            .values()
            .next()
            .map(|(_, a)| *a)
            .unwrap_or(Algorithm::RS256);
        return Ok((Keys::Set(keys), first));
    }
    let (key, family, default) = if let Ok(key) = DecodingKey::from_rsa_pem(&bytes) {
        (key, "an RSA key verifies RS* and PS*", Algorithm::RS256)
    } else if let Ok(key) = DecodingKey::from_ec_pem(&bytes) {
        (key, "an EC key verifies ES256 and ES384", Algorithm::ES256)
    } else if let Ok(key) = DecodingKey::from_ed_pem(&bytes) {
        (key, "an Ed25519 key verifies EdDSA", Algorithm::EdDSA)
    } else {
        return Err(format("no RSA, EC or Ed25519 public key in it".into()));
    };
    let alg = algorithm.unwrap_or(default);
    let fits = match default {
        Algorithm::RS256 => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        Algorithm::ES256 => matches!(alg, Algorithm::ES256 | Algorithm::ES384),
        _ => alg == Algorithm::EdDSA,
    };
    if !fits {
        return Err(AuthSetupError::Algorithm(alg, family));
    }
    Ok((Keys::One(key), alg))
}

/// The seconds since the epoch, for minting tokens.
pub fn unix_now() -> u64 {
    now_secs()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            secret: Some(Secret::new("a secret that is long enough for HS256")),
            role_claim: "role".into(),
            ..AuthConfig::default()
        }
    }

    fn mint(auth: &Authenticator, claims: Value) -> String {
        auth.mint(claims.as_object().unwrap()).unwrap()
    }

    #[test]
    fn tokens_become_contexts() {
        let auth = Authenticator::new(&config()).unwrap().unwrap();
        let exp = unix_now() + 60;
        let a = auth
            .verify(&mint(
                &auth,
                json!({"sub":"alice","role":"app","tenant":"acme","exp":exp,"iat":1,"jti":"x"}),
            ))
            .unwrap();
        assert_eq!(a.role, "app");
        assert_eq!(a.expires_at, Some(exp));
        assert_eq!(
            a.ctx.claims.as_deref(),
            Some(r#"{"role":"app","sub":"alice","tenant":"acme"}"#)
        );
        // Another token of the same person: the same context.
        let b = auth
            .verify(&mint(
                &auth,
                json!({"tenant":"acme","role":"app","sub":"alice","exp":exp + 10,"jti":"y"}),
            ))
            .unwrap();
        assert_eq!(a.ctx, b.ctx);
    }

    #[test]
    fn context_claims_can_be_narrowed_to_share_groups() {
        let mut cfg = config();
        cfg.context_claims = vec!["tenant".into()];
        let auth = Authenticator::new(&cfg).unwrap().unwrap();
        let exp = unix_now() + 60;
        let a = auth
            .verify(&mint(
                &auth,
                json!({"sub":"alice","role":"app","tenant":"acme","exp":exp}),
            ))
            .unwrap();
        let b = auth
            .verify(&mint(
                &auth,
                json!({"sub":"bob","role":"app","tenant":"acme","exp":exp}),
            ))
            .unwrap();
        assert_eq!(a.ctx, b.ctx, "one tenant, one context");
        assert_eq!(
            a.ctx.claims.as_deref(),
            Some(r#"{"tenant":"acme"}"#),
            "only keyed claims reach SQL"
        );
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let auth = Authenticator::new(&config()).unwrap().unwrap();
        let now = unix_now();
        assert_eq!(
            auth.verify(&mint(&auth, json!({"role":"app","exp":now - 100}))),
            Err(AuthError::Expired)
        );
        assert_eq!(
            auth.verify(&mint(
                &auth,
                json!({"role":"app","exp":now + 100,"nbf":now + 50})
            )),
            Err(AuthError::NotYetValid)
        );
        assert!(matches!(
            auth.verify(&mint(&auth, json!({"role":"app"}))),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(
            auth.verify(&mint(&auth, json!({"exp":now + 100}))),
            Err(AuthError::NoRole("role".into()))
        );
        // Signed with another secret.
        let other = Authenticator::new(&AuthConfig {
            secret: Some(Secret::new("another secret, just as long as the first")),
            ..config()
        })
        .unwrap()
        .unwrap();
        assert!(matches!(
            auth.verify(&mint(&other, json!({"role":"app","exp":now + 100}))),
            Err(AuthError::Invalid(_))
        ));
        // alg: none.
        let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
        let body = base64url(json!({"role":"app","exp":now + 100}).to_string().as_bytes());
        assert!(matches!(
            auth.verify(&format!("{header}.{body}.")),
            Err(AuthError::Invalid(_))
        ));
        // HS384 where HS256 is configured.
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &json!({"role":"app","exp":now + 100}),
            &EncodingKey::from_secret(b"a secret that is long enough for HS256").unwrap(),
        )
        .unwrap();
        assert!(matches!(auth.verify(&hs384), Err(AuthError::Invalid(_))));
        assert_eq!(
            auth.verify(&"x".repeat(MAX_TOKEN_BYTES + 1)),
            Err(AuthError::TooLarge)
        );
        let mut allow = config();
        allow.roles = vec!["reader".into()];
        let limited = Authenticator::new(&allow).unwrap().unwrap();
        assert_eq!(
            limited.verify(&mint(&limited, json!({"role":"admin","exp":now + 100}))),
            Err(AuthError::RoleNotAllowed("admin".into()))
        );
    }

    #[test]
    fn secrets_are_never_printed() {
        let cfg = config();
        assert!(!format!("{cfg:?}").contains("long enough"));
        let auth = Authenticator::new(&cfg).unwrap().unwrap();
        assert!(!format!("{auth:?}").contains("long enough"));
    }

    fn base64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
