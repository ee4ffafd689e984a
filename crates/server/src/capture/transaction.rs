//! One transaction's pgoutput messages, turned into the same [`Change`]s the
//! NOTIFY listener produces: per live table the keys it touched (old and
//! new), or the whole table.
//!
//! Decoding is `pg_walstream`'s (its parser alone, without its connection
//! layer; see `wal` for why); this module only picks the key out of each
//! row. It keeps nothing else of a row, and at most [`MAX_KEYS`] keys per
//! table and transaction: past that the table becomes `Change::Table`, so a
//! transaction of a million rows costs a few kilobytes here.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use pg_walstream::{LogicalReplicationMessage, LogicalReplicationParser, TupleData};
use serde_json::Value;

use crate::engine::Change;

/// Keys kept per table and transaction, then "the whole table changed"
/// (the trigger's cap too).
pub const MAX_KEYS: usize = 500;

/// pgoutput's protocol version pgwire-replication asks for.
const PROTOCOL_VERSION: u32 = 1;

/// PostgreSQL's type OIDs of integer keys (`int8`, `int2`, `int4`), which
/// travel as JSON numbers; every other key type travels as a string.
const INTEGER_TYPES: [u32; 3] = [20, 21, 23];

/// A live table as capture knows it.
#[derive(Debug, Clone, Copy)]
pub struct LiveTable {
    /// The registry's name for it.
    pub name: &'static str,
    /// Its key column; `None` for a table that only live tables' policies
    /// depend on, whose every change is a change of the whole table.
    pub key: Option<&'static str>,
}

/// What a `Relation` message told about a published table.
#[derive(Debug)]
struct Relation {
    /// `None`: published but not live (ignored, like NOTIFY does).
    table: Option<&'static str>,
    /// Position of the key column among the published ones.
    key: Option<usize>,
    numeric: bool,
    /// Whether old tuples (UPDATE of the identity, DELETE) carry the key:
    /// when the key is not part of the replica identity, they do not.
    key_in_identity: bool,
}

#[derive(Debug)]
enum Touched {
    Keys {
        numeric: bool,
        keys: HashSet<String>,
    },
    All,
}

/// Why a message could not be used (the transaction then counts as
/// "everything changed").
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("undecodable pgoutput message: {0}")]
    Parse(String),
    #[error("a change names relation {0}, which no Relation message described")]
    UnknownRelation(u32),
}

/// Relations seen on this replication session and the open transaction.
pub struct Decoder {
    parser: LogicalReplicationParser,
    live: HashMap<(String, String), LiveTable>,
    /// One entry per relation in the publication (bounded by it).
    relations: HashMap<u32, Relation>,
    /// One entry per live table touched by the open transaction.
    touched: HashMap<&'static str, Touched>,
    everything: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("relations", &self.relations)
            .field("touched", &self.touched.len())
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for these live tables, keyed by (schema, table).
    pub fn new(live: impl IntoIterator<Item = ((String, String), LiveTable)>) -> Decoder {
        Decoder {
            parser: LogicalReplicationParser::with_protocol_version(PROTOCOL_VERSION),
            live: live.into_iter().collect(),
            relations: HashMap::new(),
            touched: HashMap::new(),
            everything: false,
        }
    }

    /// A new replication session: the server describes every relation
    /// again, and an unfinished transaction will be sent again whole.
    pub fn reset(&mut self) {
        self.parser = LogicalReplicationParser::with_protocol_version(PROTOCOL_VERSION);
        self.relations.clear();
        self.touched.clear();
        self.everything = false;
    }

    /// A transaction begins.
    pub fn begin(&mut self) {
        self.touched.clear();
        self.everything = false;
    }

    /// One pgoutput message (the payload of an XLogData). A message that
    /// cannot be used makes the transaction "everything changed".
    pub fn message(&mut self, data: Bytes) -> Result<(), DecodeError> {
        let parsed = match self.parser.parse_wal_message_bytes(data) {
            Ok(parsed) => parsed.message,
            Err(err) => {
                self.everything = true;
                return Err(DecodeError::Parse(err.to_string()));
            }
        };
        match parsed {
            LogicalReplicationMessage::Relation {
                relation_id,
                namespace,
                relation_name,
                replica_identity,
                columns,
            } => {
                let live = self
                    .live
                    .get(&(namespace.to_string(), relation_name.to_string()))
                    .copied();
                let key = live
                    .and_then(|t| t.key)
                    .and_then(|k| columns.iter().position(|c| &*c.name == k));
                let column = key.and_then(|i| columns.get(i));
                self.relations.insert(
                    relation_id,
                    Relation {
                        table: live.map(|t| t.name),
                        key,
                        numeric: column.is_some_and(|c| INTEGER_TYPES.contains(&c.type_id)),
                        key_in_identity: replica_identity == b'f'
                            || column.is_some_and(|c| c.is_key()),
                    },
                );
            }
            LogicalReplicationMessage::Insert { relation_id, tuple } => {
                let rel = self.relation(relation_id)?;
                if let Some(table) = rel.table {
                    let key = key_of(rel, &tuple);
                    let numeric = rel.numeric;
                    self.touch(table, numeric, [key]);
                }
            }
            LogicalReplicationMessage::Update {
                relation_id,
                old_tuple,
                new_tuple,
                ..
            } => {
                let rel = self.relation(relation_id)?;
                if let Some(table) = rel.table {
                    let new = key_of(rel, &new_tuple);
                    // Without an old tuple the identity did not change: when
                    // the key is part of it, the old key is the new one.
                    let old = match &old_tuple {
                        Some(old) if rel.key_in_identity => key_of(rel, old),
                        None if rel.key_in_identity => Some(String::new()),
                        _ => None,
                    };
                    let numeric = rel.numeric;
                    match old {
                        Some(old) if old.is_empty() => self.touch(table, numeric, [new]),
                        old => self.touch(table, numeric, [new, old]),
                    }
                }
            }
            LogicalReplicationMessage::Delete {
                relation_id,
                old_tuple,
                ..
            } => {
                let rel = self.relation(relation_id)?;
                if let Some(table) = rel.table {
                    let old = if rel.key_in_identity {
                        key_of(rel, &old_tuple)
                    } else {
                        None
                    };
                    let numeric = rel.numeric;
                    self.touch(table, numeric, [old]);
                }
            }
            LogicalReplicationMessage::Truncate { relation_ids, .. } => {
                for relation_id in relation_ids {
                    if let Some(table) = self.relation(relation_id)?.table {
                        self.touched.insert(table, Touched::All);
                    }
                }
            }
            // Begin and Commit arrive as events of their own; types,
            // origins and logical messages say nothing about rows.
            _ => {}
        }
        Ok(())
    }

    fn relation(&mut self, relation_id: u32) -> Result<&Relation, DecodeError> {
        match self.relations.get(&relation_id) {
            Some(rel) => Ok(rel),
            None => {
                self.everything = true;
                Err(DecodeError::UnknownRelation(relation_id))
            }
        }
    }

    /// Records keys of `table`; a key that is unknown (`None`) makes it the
    /// whole table.
    fn touch<const N: usize>(
        &mut self,
        table: &'static str,
        numeric: bool,
        keys: [Option<String>; N],
    ) {
        let entry = self.touched.entry(table).or_insert_with(|| Touched::Keys {
            numeric,
            keys: HashSet::new(),
        });
        let Touched::Keys { keys: held, .. } = entry else {
            return;
        };
        for key in keys {
            match key {
                Some(key) => {
                    held.insert(key);
                }
                None => {
                    *entry = Touched::All;
                    return;
                }
            }
        }
        if held.len() > MAX_KEYS {
            *entry = Touched::All;
        }
    }

    /// The transaction committed: its changes, one per table touched (or
    /// one "everything").
    pub fn commit(&mut self) -> Vec<Change> {
        let touched = std::mem::take(&mut self.touched);
        if std::mem::take(&mut self.everything) {
            return vec![Change::Everything];
        }
        let mut changes: Vec<Change> = touched
            .into_iter()
            .map(|(table, touched)| match touched {
                Touched::All => Change::Table { table },
                Touched::Keys { numeric, keys } => {
                    let parsed: Option<Vec<Value>> =
                        keys.into_iter().map(|k| json_key(k, numeric)).collect();
                    match parsed {
                        Some(keys) => Change::Rows {
                            table,
                            keys,
                            parts: None,
                        },
                        None => Change::Table { table },
                    }
                }
            })
            .collect();
        // A stable order, so that tests (and logs) read the same each run.
        changes.sort_by_key(|c| match c {
            Change::Rows { table, .. } | Change::Table { table } => *table,
            Change::Everything => "",
        });
        changes
    }
}

/// The key column of a tuple, as text; `None` when the tuple does not carry
/// it (NULL, an unchanged TOASTed value, not published).
fn key_of(rel: &Relation, tuple: &TupleData) -> Option<String> {
    let column = tuple.get_column(rel.key?)?;
    if !column.is_text() {
        return None;
    }
    column.as_string()
}

/// A key as the listener's notices carry it: a number for integer keys, a
/// string otherwise.
fn json_key(text: String, numeric: bool) -> Option<Value> {
    if numeric {
        text.parse::<i64>().ok().map(Value::from)
    } else {
        Some(Value::String(text))
    }
}

#[cfg(test)]
mod tests {
    use pg_walstream::{ColumnData, ColumnInfo, encode_message_to_bytes};
    use serde_json::json;

    use super::*;

    fn decoder() -> Decoder {
        Decoder::new([
            (
                ("public".into(), "items".into()),
                LiveTable {
                    name: "items",
                    key: Some("id"),
                },
            ),
            (
                ("public".into(), "comments".into()),
                LiveTable {
                    name: "comments",
                    key: Some("id"),
                },
            ),
        ])
    }

    fn bytes(msg: LogicalReplicationMessage) -> Bytes {
        encode_message_to_bytes(&msg, 1).freeze()
    }

    fn relation(id: u32, name: &str, columns: Vec<ColumnInfo>, identity: u8) -> Bytes {
        bytes(LogicalReplicationMessage::Relation {
            relation_id: id,
            namespace: "public".into(),
            relation_name: name.into(),
            replica_identity: identity,
            columns,
        })
    }

    fn tuple(values: &[Option<&str>]) -> TupleData {
        TupleData::new(
            values
                .iter()
                .map(|v| match v {
                    Some(v) => ColumnData::text(v.as_bytes().to_vec()),
                    None => ColumnData::null(),
                })
                .collect(),
        )
    }

    fn insert(id: u32, key: &str) -> Bytes {
        bytes(LogicalReplicationMessage::Insert {
            relation_id: id,
            tuple: tuple(&[Some(key)]),
        })
    }

    fn items(d: &mut Decoder) {
        d.message(relation(
            1,
            "items",
            vec![ColumnInfo::new(1, "id".into(), 20, -1)],
            b'd',
        ))
        .unwrap();
    }

    fn sorted(mut changes: Vec<Change>) -> Vec<Change> {
        for c in &mut changes {
            if let Change::Rows { keys, .. } = c {
                keys.sort_by_key(|k| k.to_string());
            }
        }
        changes
    }

    #[test]
    fn inserts_updates_and_deletes_become_keys() {
        let mut d = decoder();
        items(&mut d);
        d.begin();
        d.message(insert(1, "7")).unwrap();
        // Key changed: old and new.
        d.message(bytes(LogicalReplicationMessage::Update {
            relation_id: 1,
            old_tuple: Some(tuple(&[Some("8")])),
            new_tuple: tuple(&[Some("9")]),
            key_type: Some('K'),
        }))
        .unwrap();
        // Key unchanged: no old tuple.
        d.message(bytes(LogicalReplicationMessage::Update {
            relation_id: 1,
            old_tuple: None,
            new_tuple: tuple(&[Some("10")]),
            key_type: None,
        }))
        .unwrap();
        d.message(bytes(LogicalReplicationMessage::Delete {
            relation_id: 1,
            old_tuple: tuple(&[Some("11")]),
            key_type: 'K',
        }))
        .unwrap();
        assert_eq!(
            sorted(d.commit()),
            vec![Change::Rows {
                table: "items",
                keys: vec![json!(10), json!(11), json!(7), json!(8), json!(9)],
                parts: None,
            }]
        );
        // The next transaction starts empty.
        d.begin();
        assert_eq!(d.commit(), vec![]);
    }

    #[test]
    fn text_keys_are_strings_and_other_tables_are_ignored() {
        let mut d = decoder();
        d.message(relation(
            2,
            "comments",
            vec![ColumnInfo::new(1, "id".into(), 2950, -1)],
            b'd',
        ))
        .unwrap();
        d.message(relation(
            3,
            "elsewhere",
            vec![ColumnInfo::new(1, "id".into(), 23, -1)],
            b'd',
        ))
        .unwrap();
        d.begin();
        d.message(insert(2, "6f1c2c1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f"))
            .unwrap();
        d.message(insert(3, "1")).unwrap();
        assert_eq!(
            d.commit(),
            vec![Change::Rows {
                table: "comments",
                keys: vec![json!("6f1c2c1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f")],
                parts: None,
            }]
        );
    }

    #[test]
    fn past_the_cap_a_table_changes_as_a_whole() {
        let mut d = decoder();
        items(&mut d);
        d.begin();
        for i in 0..MAX_KEYS {
            d.message(insert(1, &i.to_string())).unwrap();
        }
        assert!(matches!(&d.commit()[0], Change::Rows { keys, .. } if keys.len() == MAX_KEYS));
        d.begin();
        for i in 0..=MAX_KEYS * 4 {
            d.message(insert(1, &i.to_string())).unwrap();
        }
        assert_eq!(d.commit(), vec![Change::Table { table: "items" }]);
        assert!(d.touched.is_empty(), "nothing held after the commit");
    }

    #[test]
    fn a_key_outside_the_replica_identity_refreshes_on_update_and_delete() {
        let mut d = decoder();
        // Keyed by `id`, but the identity is another column.
        d.message(relation(
            1,
            "items",
            vec![
                ColumnInfo::new(0, "id".into(), 20, -1),
                ColumnInfo::new(1, "code".into(), 25, -1),
            ],
            b'd',
        ))
        .unwrap();
        d.begin();
        d.message(bytes(LogicalReplicationMessage::Insert {
            relation_id: 1,
            tuple: tuple(&[Some("5"), Some("a")]),
        }))
        .unwrap();
        assert_eq!(
            d.commit(),
            vec![Change::Rows {
                table: "items",
                keys: vec![json!(5)],
                parts: None,
            }]
        );
        d.begin();
        d.message(bytes(LogicalReplicationMessage::Update {
            relation_id: 1,
            old_tuple: None,
            new_tuple: tuple(&[Some("6"), Some("a")]),
            key_type: None,
        }))
        .unwrap();
        assert_eq!(d.commit(), vec![Change::Table { table: "items" }]);
        d.begin();
        d.message(bytes(LogicalReplicationMessage::Delete {
            relation_id: 1,
            old_tuple: tuple(&[None, Some("a")]),
            key_type: 'K',
        }))
        .unwrap();
        assert_eq!(d.commit(), vec![Change::Table { table: "items" }]);
    }

    #[test]
    fn truncate_and_garbage() {
        let mut d = decoder();
        items(&mut d);
        d.begin();
        d.message(bytes(LogicalReplicationMessage::Truncate {
            relation_ids: vec![1],
            flags: 0,
        }))
        .unwrap();
        assert_eq!(d.commit(), vec![Change::Table { table: "items" }]);
        d.begin();
        assert!(d.message(Bytes::from_static(b"I\0")).is_err());
        assert_eq!(d.commit(), vec![Change::Everything]);
        d.begin();
        assert!(matches!(
            d.message(insert(99, "1")),
            Err(DecodeError::UnknownRelation(99))
        ));
        assert_eq!(d.commit(), vec![Change::Everything]);
    }
}
