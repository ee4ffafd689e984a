//! The clients' JWTs: one per client, for its tenant, signed with the
//! secret pglive is started with.

use anyhow::{Context, Result};

/// The secret the bench signs its tokens with and passes to pglive.
pub const JWT_SECRET: &str = "pglive-bench-secret-for-hs256-tokens-not-for-production";

/// A token for user `sub` in `tenant`, as pglive's `pglive_user`, valid for
/// six hours.
pub fn mint(sub: &str, tenant: &str) -> Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 6 * 3600;
    let claims = serde_json::json!({
        "sub": sub,
        "role": "pglive_user",
        "tenant": tenant,
        "exp": exp,
    });
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes())
        .context("the bench's JWT key")?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .context("signing a token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_claims() -> Result<()> {
        let token = mint("user-1", "t7")?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.required_spec_claims.clear();
        let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes())?;
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v)?;
        assert_eq!(data.claims["tenant"], "t7");
        assert_eq!(data.claims["role"], "pglive_user");
        assert_eq!(data.claims["sub"], "user-1");
        Ok(())
    }
}
