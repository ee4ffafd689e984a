//! The messages a client sends, as the protocol spells them. The queries
//! are JSON values, not the contract's `LiveQuery`, so that tests can send
//! queries the server must refuse.

use pglive_schema::wire::Since;
use serde_json::{Value, json};

/// `subscribe` to `query` as `id`, with `since` to resume from what the
/// client still has.
pub fn subscribe(id: &str, query: &Value, since: Option<&Since>) -> Value {
    match since {
        None => json!({"type": "subscribe", "id": id, "query": query}),
        Some(since) => json!({
            "type": "subscribe",
            "id": id,
            "query": query,
            "since": {"epoch": since.epoch, "version": since.version},
        }),
    }
}

/// `unsubscribe` from `id`.
pub fn unsubscribe(id: &str) -> Value {
    json!({"type": "unsubscribe", "id": id})
}

/// `auth` with `token`.
pub fn auth(token: &str) -> Value {
    json!({"type": "auth", "token": token})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_frames() {
        let query = json!({"table": "items"});
        assert_eq!(
            subscribe("a", &query, None).to_string(),
            r#"{"id":"a","query":{"table":"items"},"type":"subscribe"}"#
        );
        let since = Since {
            epoch: "e1".into(),
            version: 7,
        };
        let v = subscribe("a", &query, Some(&since));
        assert_eq!(v["since"]["epoch"], "e1");
        assert_eq!(v["since"]["version"], 7);
    }
}
