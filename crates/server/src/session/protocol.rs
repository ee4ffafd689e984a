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
    // serde also builds a tagged message from an array (`["unsubscribe",
    // "a"]`), which the published schema refuses: a frame is an object.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<Value>(text) {
            Err(e) => Refusal::new(
                None,
                ErrorCode::BadFrame,
                format!("frame is not valid JSON: {e}"),
            ),
            Ok(_) => Refusal::new(
                None,
                ErrorCode::BadFrame,
                "frame must be a JSON object with a string \"type\"",
            ),
        });
    }
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(err) => return Err(explain(text, &err, tables)),
    };
    if let ClientMessage::Subscribe { id, query, .. } = &message {
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

/// A property-based fuzzer over the client-frame decoder and query
/// validation: random bytes, random JSON from the protocol's own vocabulary,
/// and mutations of valid frames. Whatever arrives, decoding never panics,
/// every refusal explains itself, and what the server accepts the published
/// JSON Schema (`crates/schema/json-schema/client-message.json`) accepts
/// too. `PGLIVE_FUZZ_CASES` sets the number of inputs (default 20,000;
/// issue 13's run used 1,000,000 in a release build).
#[cfg(test)]
mod fuzz {
    use pglive_schema::live::{Listed, TableVisitor};
    use pglive_schema::ops::Op;
    use pglive_schema::scalar::ScalarKind;
    use pglive_schema::tables::visit_tables;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::{Value, json};

    use super::*;

    const TABLES: &[&str] = &["items", "tasks", "comments"];
    const WORDS: &[&str] = &[
        "type",
        "id",
        "query",
        "table",
        "filter",
        "order",
        "by",
        "dir",
        "limit",
        "subscribe",
        "unsubscribe",
        "items",
        "tasks",
        "comments",
        "name_contains",
        "name_eq",
        "status_in",
        "assignee_eq",
        "assignee_is_null",
        "priority_gte",
        "due_date_lt",
        "created_at_gte",
        "id_in",
        "task_id_eq",
        "asc",
        "desc",
        "todo",
        "done",
        "",
        "\u{0}",
        "é",
        "-10000-01-01",
        "2026-12-01",
        "2026-12-01T00:00:00Z",
        "9007199254740993",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0u32..20_000).prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(WORDS).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::vec((prop::sample::select(WORDS), inner), 0..6).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    /// Frames close to valid ones, so that the decoder's deep paths run.
    fn structured() -> impl Strategy<Value = String> {
        let query = (
            prop::sample::select(TABLES),
            prop::option::of(value()),
            prop::option::of(value()),
            prop::option::of(scalar()),
        )
            .prop_map(|(table, filter, order, limit)| {
                let mut q = json!({"table": table});
                if let Some(f) = filter {
                    q["filter"] = f;
                }
                if let Some(o) = order {
                    q["order"] = o;
                }
                if let Some(l) = limit {
                    q["limit"] = l;
                }
                q
            });
        (
            prop::sample::select(&["subscribe", "unsubscribe", "auth", "x"][..]),
            scalar(),
            query,
            prop::option::of(value()),
            prop::option::of(value()),
            any::<bool>(),
        )
            .prop_map(|(kind, id, query, since, extra, as_array)| {
                let mut f = json!({"type": kind, "id": id, "query": query});
                if kind == "auth" {
                    f = json!({"type": kind, "token": id});
                }
                if let Some(since) = since {
                    f["since"] = since;
                }
                if let Some(extra) = extra {
                    f["extra"] = extra;
                }
                if as_array {
                    // serde builds structs and tagged enums from arrays too.
                    let values: Vec<Value> = f
                        .as_object()
                        .map(|m| m.values().cloned().collect())
                        .unwrap_or_default();
                    return Value::Array(values).to_string();
                }
                f.to_string()
            })
    }

    /// A filter field, its column's kind, its operator and enum values.
    type Field = (String, ScalarKind, Op, &'static [&'static str]);
    /// A table's name, filter fields and orderable columns.
    type Table = (&'static str, Vec<Field>, Vec<&'static str>);

    /// Every filter field and orderable column of every declared table,
    /// from the declarations' metadata.
    fn vocabulary() -> Vec<Table> {
        struct Collect(Vec<Table>);
        impl TableVisitor for Collect {
            fn visit<T: Listed>(&mut self) {
                let filters = T::COLUMNS
                    .iter()
                    .flat_map(|c| {
                        c.filters.iter().map(move |op| {
                            let suffix = serde_json::to_value(op).unwrap();
                            (
                                format!("{}_{}", c.name, suffix.as_str().unwrap()),
                                c.kind,
                                *op,
                                c.values,
                            )
                        })
                    })
                    .collect();
                let orders = T::COLUMNS
                    .iter()
                    .filter(|c| c.order)
                    .map(|c| c.name)
                    .collect();
                self.0.push((T::NAME, filters, orders));
            }
        }
        let mut c = Collect(Vec::new());
        visit_tables(&mut c);
        c.0
    }

    fn operand(kind: ScalarKind, values: &[&str], n: u32) -> Value {
        match kind {
            ScalarKind::Bool => json!(n.is_multiple_of(2)),
            ScalarKind::Int2 | ScalarKind::Int4 => json!(i64::from(n % 7) - 2),
            ScalarKind::Int8 => json!(
                u64::from(n % 5)
                    .wrapping_mul(4_503_599_627_370_497)
                    .to_string()
            ),
            ScalarKind::Text => {
                json!(["a", "_", "é", "", "x".repeat(201).as_str()][(n % 5) as usize])
            }
            ScalarKind::Enum => json!(
                values
                    .get(n as usize % values.len().max(1))
                    .copied()
                    .unwrap_or("")
            ),
            ScalarKind::Date => {
                json!(["2026-12-01", "-10000-01-01", "2026-02-30"][(n % 3) as usize])
            }
            ScalarKind::Timestamptz => json!(
                [
                    "2026-12-01T00:00:00Z",
                    "2026-12-01T00:00:00.123456789+02:00",
                    "-4714-01-01T00:00:00Z"
                ][(n % 3) as usize]
            ),
            ScalarKind::Uuid => {
                json!(["6f1c2c1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f", "not-a-uuid"][(n % 2) as usize])
            }
        }
    }

    /// Queries built from the tables' real filters and orders, mostly valid.
    fn typed() -> impl Strategy<Value = String> {
        let vocabulary = vocabulary();
        (any::<usize>(), prop::collection::vec((any::<usize>(), any::<u32>()), 0..4), any::<usize>(), any::<bool>(), prop::option::of(0u32..20_000), "[a-z0-9]{1,8}")
            .prop_map(move |(t, picks, by, desc, limit, id)| {
                let (table, filters, orders) = &vocabulary[t % vocabulary.len()];
                let mut filter = serde_json::Map::new();
                for (which, n) in picks {
                    if filters.is_empty() {
                        break;
                    }
                    let (field, kind, op, values) = &filters[which % filters.len()];
                    let v = match op {
                        Op::In => json!((0..(n % 3 + 1)).map(|i| operand(*kind, values, n + i)).collect::<Vec<_>>()),
                        Op::IsNull => json!(n.is_multiple_of(2)),
                        Op::Contains => operand(ScalarKind::Text, values, n),
                        _ => operand(*kind, values, n),
                    };
                    filter.insert(field.clone(), v);
                }
                let mut q = json!({"table": table, "filter": filter, "order": {"by": orders[by % orders.len()], "dir": if desc { "desc" } else { "asc" }}});
                if let Some(l) = limit {
                    q["limit"] = json!(l);
                }
                json!({"type": "subscribe", "id": id, "query": q}).to_string()
            })
    }

    fn frame() -> impl Strategy<Value = String> {
        let mutated = (
            prop_oneof![structured(), typed()],
            any::<usize>(),
            any::<u8>(),
            0..3u8,
        )
            .prop_map(|(text, at, byte, how)| {
                let mut bytes = text.into_bytes();
                let at = at % (bytes.len() + 1);
                match how {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
                String::from_utf8_lossy(&bytes).into_owned()
            });
        prop_oneof![
            3 => structured(),
            4 => typed(),
            2 => mutated,
            1 => value().prop_map(|v| v.to_string()),
            1 => ".{0,64}".prop_map(|s: String| s),
        ]
    }

    #[test]
    fn client_frames() {
        let cases: u32 = std::env::var("PGLIVE_FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000);
        let schema: Value = serde_json::from_str(include_str!(
            "../../../schema/json-schema/client-message.json"
        ))
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let accepted = std::cell::Cell::new(0u64);
        runner
            .run(&frame(), |text| {
                match decode(&text, TABLES, 10_000) {
                    Ok(message) => {
                        accepted.set(accepted.get() + 1);
                        let value: Value = serde_json::from_str(&text).unwrap();
                        prop_assert!(
                            validator.is_valid(&value),
                            "accepted but the schema refuses: {text}"
                        );
                        // What was accepted re-encodes to an equal message.
                        let again: ClientMessage =
                            serde_json::from_value(serde_json::to_value(&message).unwrap())
                                .unwrap();
                        prop_assert_eq!(again, message);
                    }
                    Err(refusal) => {
                        prop_assert!(!refusal.message.is_empty());
                        if let Ok(value) = serde_json::from_str::<Value>(&text) {
                            // The schema may accept what validation refuses
                            // (ranges, lengths, the limit cap), nothing else.
                            if validator.is_valid(&value) {
                                prop_assert!(
                                    matches!(refusal.code, ErrorCode::InvalidQuery),
                                    "the schema accepts what the server refuses as {:?}: {text}",
                                    refusal.code
                                );
                            }
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
        println!("fuzzed {cases} client frames; {} accepted", accepted.get());
    }
}
