//! Development tokens: signed with the configured HMAC secret, for
//! `POST /api/dev/token`, `pglive token` and tests. A server that verifies
//! with a public key holds no signing key and mints nothing.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use super::error::AuthSetupError;
use super::keys::Secret;

/// The signing half of an HMAC secret.
pub(super) struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
}

impl Signer {
    pub(super) fn from_secret(
        secret: &Secret,
        algorithm: Algorithm,
    ) -> Result<Signer, AuthSetupError> {
        let key = EncodingKey::from_secret(secret.expose().as_bytes())
            .map_err(|e| AuthSetupError::KeyFormat("--jwt-secret".into(), e.to_string()))?;
        Ok(Signer { key, algorithm })
    }

    /// `claims`, signed; `None` if they cannot be encoded.
    pub(super) fn mint(&self, claims: &Map<String, Value>) -> Option<String> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key).ok()
    }
}
