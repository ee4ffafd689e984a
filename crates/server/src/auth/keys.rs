//! The keys that verify tokens: a configured secret (HMAC), or a key file
//! holding a PEM public key or a JWKS, each with the algorithms it fits.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::error::{AuthError, AuthSetupError};

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

/// Keys that verify tokens: one, or a JWKS chosen by the token's `kid`.
pub(super) enum Keys {
    One(DecodingKey),
    Set(HashMap<String, (DecodingKey, Algorithm)>),
}

impl Keys {
    /// The key of an HMAC `secret`, and the algorithm it verifies (HS256
    /// unless configured).
    pub(super) fn from_secret(
        secret: &Secret,
        algorithm: Option<Algorithm>,
    ) -> Result<(Keys, Algorithm), AuthSetupError> {
        let alg = algorithm.unwrap_or(Algorithm::HS256);
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(AuthSetupError::Algorithm(
                alg,
                "a secret verifies HS256, HS384 or HS512",
            ));
        }
        let decoding = DecodingKey::from_secret(secret.expose().as_bytes())
            .map_err(|e| AuthSetupError::KeyFormat("--jwt-secret".into(), e.to_string()))?;
        Ok((Keys::One(decoding), alg))
    }

    /// The algorithms a token may name: `configured`, or with a JWKS those
    /// of its keys.
    pub(super) fn algorithms(&self, configured: Algorithm) -> Vec<Algorithm> {
        match self {
            Keys::One(_) => vec![configured],
            Keys::Set(set) => set
                .values()
                .map(|(_, a)| *a)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect(),
        }
    }

    /// The key that verifies `token`: the one key, or the JWKS key its
    /// header's `kid` names.
    pub(super) fn for_token(&self, token: &str) -> Result<&DecodingKey, AuthError> {
        match self {
            Keys::One(key) => Ok(key),
            Keys::Set(set) => {
                let kid = jsonwebtoken::decode_header(token)
                    .map_err(|e| AuthError::Invalid(e.to_string()))?
                    .kid
                    .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
                Ok(&set
                    .get(&kid)
                    .ok_or_else(|| AuthError::Invalid("the token's key (kid) is unknown".into()))?
                    .0)
            }
        }
    }
}

/// Loads a PEM public key or a JWKS, and the algorithm it verifies.
pub(super) fn load_key_file(
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
