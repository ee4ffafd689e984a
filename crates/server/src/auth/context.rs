//! From a token's claims to the security context SQL runs in, and the
//! identity (context, role, expiry) of a connection or request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::engine::Context;

/// Claims that change with every token and so never belong to a context.
const VOLATILE_CLAIMS: &[&str] = &["exp", "iat", "nbf", "jti"];

/// Who a connection or request is: its context, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub ctx: Arc<Context>,
    pub role: String,
    /// Unix seconds; `None` for the anonymous role (no token to expire).
    pub expires_at: Option<u64>,
    /// The token's `sub`: whose fair share of the server's budgets the
    /// connection's subscriptions count against. `None` for the anonymous
    /// role and tokens without one (each connection is then its own).
    pub subject: Option<String>,
}

impl Identity {
    /// Time left before the token expires.
    pub fn remaining(&self) -> Option<Duration> {
        let now = unix_now();
        self.expires_at
            .map(|exp| Duration::from_secs(exp.saturating_sub(now)))
    }
}

/// The seconds since the epoch, for minting tokens.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The context of `role` with `claims` visible to SQL as canonical JSON.
pub fn context(role: Option<&str>, claims: Option<&Map<String, Value>>) -> Context {
    Context {
        role: role.map(Arc::from),
        claims: claims.map(|c| Arc::from(canonical(&Value::Object(c.clone())).as_str())),
    }
}

/// The claims of a token that make up its context: the configured ones, or
/// (when none are configured) all but those that change with every token.
pub(super) fn visible(claims: Map<String, Value>, context_claims: &[String]) -> Map<String, Value> {
    claims
        .into_iter()
        .filter(|(k, _)| {
            if context_claims.is_empty() {
                !VOLATILE_CLAIMS.contains(&k.as_str())
            } else {
                context_claims.contains(k)
            }
        })
        .collect()
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
