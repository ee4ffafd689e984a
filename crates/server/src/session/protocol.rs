//! The session's protocol: client frames decoded with the contract's
//! [`ClientMessage`], so the server accepts exactly what the published JSON
//! Schema accepts, and each refusal gets its typed error code.

use pglive_schema::wire::MAX_SUBSCRIPTION_ID;
use pglive_schema::{ClientMessage, ErrorCode, LiveQuery, SubscriptionId};
use serde_json::Value;

/// A frame the server will not act on, and what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub id: Option<SubscriptionId>,
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(id: Option<SubscriptionId>, code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            id,
            code,
            message: message.into(),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Decodes a client frame. `tables` lists the live tables, for messages.
pub fn decode(text: &str, tables: &[&str], max_query_limit: u32) -> Result<ClientMessage, Refusal> {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(err) => return Err(explain(text, &err, tables)),
    };
    if let ClientMessage::Subscribe { id, query } = &message {
        query.validate(max_query_limit).map_err(|err| {
            Refusal::new(
                Some(id.clone()),
                ErrorCode::InvalidQuery,
                format!("invalid query: {err}"),
            )
        })?;
    }
    Ok(message)
}

/// Why a frame did not decode as a `ClientMessage`, as precisely as the
/// frame allows: which part is wrong decides the error code.
fn explain(text: &str, err: &serde_json::Error, tables: &[&str]) -> Refusal {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Refusal::new(
                None,
                ErrorCode::BadFrame,
                format!("frame is not valid JSON: {e}"),
            );
        }
    };
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Refusal::new(
            None,
            ErrorCode::BadFrame,
            "frame must be a JSON object with a string \"type\"",
        );
    };
    let id = match value.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_SUBSCRIPTION_ID => {
            SubscriptionId(s.clone())
        }
        Some(Value::String(_)) => {
            return Refusal::new(
                None,
                ErrorCode::InvalidId,
                format!("\"id\" must be 1 to {MAX_SUBSCRIPTION_ID} characters"),
            );
        }
        _ => return Refusal::new(None, ErrorCode::BadFrame, "frame needs a string \"id\""),
    };
    if !matches!(kind, "subscribe" | "unsubscribe") {
        let kind = truncate(kind, 40);
        return Refusal::new(
            Some(id),
            ErrorCode::BadFrame,
            format!("unknown message type {kind:?}; expected \"subscribe\" or \"unsubscribe\""),
        );
    }
    if kind == "subscribe" {
        let Some(query) = value.get("query") else {
            return Refusal::new(Some(id), ErrorCode::BadFrame, "subscribe needs a \"query\"");
        };
        let live = tables.join(", ");
        match query.get("table").and_then(Value::as_str) {
            None => {
                return Refusal::new(
                    Some(id),
                    ErrorCode::UnknownTable,
                    format!("query needs a string \"table\"; live tables are: {live}"),
                );
            }
            Some(t) if !tables.contains(&t) => {
                let t = truncate(t, 64);
                return Refusal::new(
                    Some(id),
                    ErrorCode::UnknownTable,
                    format!("unknown table {t:?}; live tables are: {live}"),
                );
            }
            Some(_) => {}
        }
        if let Err(e) = serde_json::from_value::<LiveQuery>(query.clone()) {
            return Refusal::new(
                Some(id),
                ErrorCode::InvalidQuery,
                format!("invalid query: {e}"),
            );
        }
    }
    Refusal::new(
        Some(id),
        ErrorCode::BadFrame,
        format!("invalid {kind} message: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &[&str] = &["items", "tasks"];

    fn code(text: &str) -> ErrorCode {
        decode(text, TABLES, 100).map(|_| ()).unwrap_err().code
    }

    #[test]
    fn the_contract_decides_what_is_accepted() {
        assert!(
            decode(
                r#"{"type":"subscribe","id":"a","query":{"table":"items"}}"#,
                TABLES,
                100
            )
            .is_ok()
        );
        assert!(decode(r#"{"type":"unsubscribe","id":"a"}"#, TABLES, 100).is_ok());
        // Unknown fields are refused, as the JSON Schema refuses them.
        assert_eq!(
            code(r#"{"type":"unsubscribe","id":"a","extra":1}"#),
            ErrorCode::BadFrame
        );
        assert_eq!(
            code(r#"{"type":"subscribe","id":"a","query":{"table":"items"},"x":1}"#),
            ErrorCode::BadFrame
        );
    }

    #[test]
    fn refusals_are_typed() {
        assert_eq!(code("nope"), ErrorCode::BadFrame);
        assert_eq!(code("[1]"), ErrorCode::BadFrame);
        assert_eq!(code(r#"{"type":"subscribe"}"#), ErrorCode::BadFrame);
        assert_eq!(
            code(r#"{"type":"subscribe","id":""}"#),
            ErrorCode::InvalidId
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"unsubscribe","id":"{}"}}"#,
                "x".repeat(129)
            )),
            ErrorCode::InvalidId
        );
        assert_eq!(code(r#"{"type":"hello","id":"a"}"#), ErrorCode::BadFrame);
        assert_eq!(
            code(r#"{"type":"subscribe","id":"a"}"#),
            ErrorCode::BadFrame
        );
        assert_eq!(
            code(r#"{"type":"subscribe","id":"a","query":{"table":"nope"}}"#),
            ErrorCode::UnknownTable
        );
        assert_eq!(
            code(r#"{"type":"subscribe","id":"a","query":{}}"#),
            ErrorCode::UnknownTable
        );
        assert_eq!(
            code(
                r#"{"type":"subscribe","id":"a","query":{"table":"items","filter":{"sql":"1=1"}}}"#
            ),
            ErrorCode::InvalidQuery
        );
        assert_eq!(
            code(r#"{"type":"subscribe","id":"a","query":{"table":"items","limit":101}}"#),
            ErrorCode::InvalidQuery
        );
        let refusal = decode(
            r#"{"type":"subscribe","id":"a","query":{"table":"items","limit":0}}"#,
            TABLES,
            100,
        )
        .unwrap_err();
        assert_eq!(refusal.id, Some(SubscriptionId("a".into())));
    }
}
