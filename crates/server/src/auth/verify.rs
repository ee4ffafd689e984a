//! The `Authenticator`: built once from configuration, it verifies tokens
//! (signature, algorithm, times, issuer, audience), turns their claims into
//! an `Identity`, checks roles and mints development tokens.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::context::{Identity, context, visible};
use super::error::{AuthError, AuthSetupError, MAX_TOKEN_BYTES, Privilege};
use super::keys::{Keys, Secret, load_key_file};
use super::mint::Signer;
use super::roles::{LoginCheck, RoleCheck, Verdict, verdict};

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
    /// The live tables: a role owning one is privileged.
    pub tables: Vec<String>,
    /// Tokens are accepted even though the server logs in as a superuser
    /// or a `BYPASSRLS` role (`--allow-privileged-login`).
    pub allow_privileged_login: bool,
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
    signer: Option<Signer>,
    /// Roles checked against PostgreSQL, and whether they may be used.
    role_check: RoleCheck,
    allow_privileged_login: bool,
    /// Whether the role the server logs in as lets it accept tokens, once
    /// known (set by the first check that reaches the database; never
    /// reset: the login role cannot change under a running server).
    login: OnceLock<Result<(), Privilege>>,
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

impl Authenticator {
    /// Builds the authenticator, or `None` when no key is configured.
    pub fn new(config: &AuthConfig) -> Result<Auth, AuthSetupError> {
        let (keys, algorithm, signer) = match (&config.secret, &config.key_file) {
            (Some(_), Some(_)) => return Err(AuthSetupError::Both),
            (None, None) => {
                if config.anon_role.is_some() {
                    return Err(AuthSetupError::AnonWithoutKeys);
                }
                return Ok(None);
            }
            (Some(secret), None) => {
                let (keys, alg) = Keys::from_secret(secret, config.algorithm)?;
                (keys, alg, Some(Signer::from_secret(secret, alg)?))
            }
            (None, Some(path)) => {
                let (keys, alg) = load_key_file(path, config.algorithm)?;
                (keys, alg, None)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = keys.algorithms(algorithm);
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
            subject: None,
        });
        Ok(Some(Arc::new(Authenticator {
            keys,
            validation,
            role_claim,
            roles: config.roles.iter().cloned().collect(),
            anon,
            context_claims: config.context_claims.clone(),
            signer,
            role_check: RoleCheck::new(config.tables.clone()),
            allow_privileged_login: config.allow_privileged_login,
            login: OnceLock::new(),
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
        let key = self.keys.for_token(token)?;
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
        self.admits(&role)?;
        let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        let visible = visible(claims, &self.context_claims);
        Ok(Identity {
            ctx: Arc::new(context(Some(&role), Some(&visible))),
            role,
            expires_at: Some(expires_at),
            subject,
        })
    }

    /// Whether a token may use `role` (see `roles`): the server's role may
    /// switch to it, and it is not privileged unless `--jwt-roles` names
    /// it; and the server itself does not log in as a privileged role
    /// (unless `--allow-privileged-login`). Remembered once checked.
    pub async fn check_role(
        &self,
        pool: &Pool<AsyncPgConnection>,
        role: &str,
    ) -> Result<(), AuthError> {
        self.check_login(pool).await?;
        self.role_check
            .check(pool, role, self.roles.contains(role))
            .await
    }

    /// Whether the role the server logs in as lets it accept tokens: not a
    /// superuser or `BYPASSRLS` role, unless `--allow-privileged-login`.
    pub async fn check_login(&self, pool: &Pool<AsyncPgConnection>) -> Result<(), AuthError> {
        let known = match self.login.get() {
            Some(known) => *known,
            None => {
                let mut conn = pool.get().await.map_err(|_| AuthError::Unavailable)?;
                let login = LoginCheck::of(&mut conn)
                    .await
                    .map_err(|_| AuthError::Unavailable)?;
                let known = match login.privilege() {
                    Some(why) if !self.allow_privileged_login => Err(why),
                    _ => Ok(()),
                };
                *self.login.get_or_init(|| known)
            }
        };
        known.map_err(|_| AuthError::PrivilegedLogin)
    }

    /// What PostgreSQL says of `role` (for the start-up checks).
    pub async fn verdict(
        &self,
        conn: &mut AsyncPgConnection,
        role: &str,
    ) -> Result<Verdict, diesel::result::Error> {
        verdict(conn, role, self.role_check.tables()).await
    }

    /// The roles `--jwt-roles` names (each allowed even if privileged).
    pub fn listed_roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(String::as_str)
    }

    /// Whether `--jwt-roles` (when set) lets tokens name `role`.
    pub fn admits(&self, role: &str) -> Result<(), AuthError> {
        if !self.roles.is_empty() && !self.roles.contains(role) {
            return Err(AuthError::RoleNotAllowed(role.to_owned()));
        }
        Ok(())
    }

    /// Whether `--allow-privileged-login` was given.
    pub fn allows_privileged_login(&self) -> bool {
        self.allow_privileged_login
    }

    /// Whether `--jwt-roles` names `role`.
    pub fn lists(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// A token for development and tests, signed with the configured
    /// secret; `None` when tokens are verified with a public key.
    pub fn mint(&self, claims: &Map<String, Value>) -> Option<String> {
        self.signer.as_ref()?.mint(claims)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::super::context::unix_now;
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
