//! Random writes and queries for any declared table, generated from its
//! column metadata (`LiveTable::COLUMNS`), with the SQL a fresh run of each
//! query needs, written independently of the server's own SQL: the property
//! tests compare the two.
//!
//! Values come from small domains so that filters hit, rows tie on order
//! columns, and foreign keys to small integer keys usually exist.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use pglive_schema::live::{Column, LiveTable, Relation, RelationKind, Write};
use pglive_schema::ops::Op;
use pglive_schema::scalar::ScalarKind;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

/// The seeds a property test runs: `PGLIVE_PROPTEST_SEEDS=1,2,3` to
/// replay a failure, otherwise two random ones (tests print them).
pub fn seeds() -> Vec<u64> {
    match std::env::var("PGLIVE_PROPTEST_SEEDS") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => vec![rand::random(), rand::random()],
    }
}

/// One table as the generators see it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub schema: &'static str,
    pub name: &'static str,
    pub key: &'static str,
    pub columns: &'static [Column],
    pub relations: &'static [Relation],
}

impl Spec {
    pub fn of<T: LiveTable>() -> Spec {
        Spec {
            schema: T::SCHEMA,
            name: T::NAME,
            key: T::KEY,
            columns: T::COLUMNS,
            relations: T::RELATIONS,
        }
    }

    fn table(&self) -> String {
        format!("\"{}\".\"{}\"", self.schema, self.name)
    }

    fn key_column(&self) -> &Column {
        self.columns
            .iter()
            .find(|c| c.key)
            .unwrap_or(&self.columns[0])
    }
}

/// A value of some column, as SQL and as JSON.
#[derive(Debug, Clone)]
enum Val {
    Text(String),
    Int(i64),
    Bool(bool),
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

const TEXTS: &[&str] = &[
    "a", "b", "A", "é", "a_", "a%", "zz", "Z b", "a\\b", "ab", "😀",
];
const CONTAINS: &[&str] = &["a", "_", "%", "é", "b", "\\", "Z"];
const UUIDS: &[&str] = &[
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "7fffffff-0000-4000-8000-000000000000",
    "80000000-0000-4000-8000-000000000000",
    "ffffffff-ffff-4fff-bfff-ffffffffffff",
];

fn value(rng: &mut StdRng, col: &Column) -> Val {
    match col.kind {
        ScalarKind::Text => Val::Text((*TEXTS.choose(rng).unwrap_or(&"a")).to_owned()),
        ScalarKind::Enum => Val::Text((*col.values.choose(rng).unwrap_or(&"")).to_owned()),
        ScalarKind::Int2 | ScalarKind::Int4 | ScalarKind::Int8 => {
            let (lo, hi) = (col.min.unwrap_or(1), col.max.unwrap_or(40));
            Val::Int(rng.random_range(lo..=hi))
        }
        ScalarKind::Bool => Val::Bool(rng.random_bool(0.5)),
        ScalarKind::Date => Val::Date(
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default()
                + Duration::days(rng.random_range(0..6)),
        ),
        ScalarKind::Timestamptz => Val::Time(
            DateTime::from_timestamp(
                1_790_000_000 + 60 * rng.random_range(0..20),
                1_000 * rng.random_range(0..3),
            )
            .unwrap_or_default(),
        ),
        ScalarKind::Uuid => Val::Text((*UUIDS.choose(rng).unwrap_or(&UUIDS[0])).to_owned()),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn sql(val: &Val, kind: ScalarKind) -> String {
    match (val, kind) {
        (Val::Text(s), ScalarKind::Uuid) => format!("{}::uuid", quote(s)),
        (Val::Text(s), _) => quote(s),
        (Val::Int(n), _) => n.to_string(),
        (Val::Bool(b), _) => b.to_string(),
        (Val::Date(d), _) => format!("DATE '{d}'"),
        (Val::Time(t), _) => format!("TIMESTAMPTZ '{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
    }
}

fn wire(val: &Val, kind: ScalarKind) -> Value {
    match (val, kind) {
        (Val::Text(s), _) => json!(s),
        (Val::Int(n), ScalarKind::Int8) => json!(n.to_string()),
        (Val::Int(n), _) => json!(n),
        (Val::Bool(b), _) => json!(b),
        (Val::Date(d), _) => json!(d.to_string()),
        (Val::Time(t), _) => json!(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
    }
}

fn text_like(kind: ScalarKind) -> bool {
    matches!(kind, ScalarKind::Text | ScalarKind::Enum)
}

fn ident(col: &Column) -> String {
    format!("\"{}\"", col.name)
}

/// The column as ordered comparisons see it (byte order for text).
fn ordered(col: &Column) -> String {
    if text_like(col.kind) {
        format!("{} COLLATE \"C\"", ident(col))
    } else {
        ident(col)
    }
}

/// Up to `n` rows picked by their place in key order.
fn some_rows(rng: &mut StdRng, spec: &Spec, n: u32) -> String {
    let key = ident(spec.key_column());
    format!(
        "{key} IN (SELECT {key} FROM {} ORDER BY {key} OFFSET {} LIMIT {n})",
        spec.table(),
        rng.random_range(0..20)
    )
}

/// An INSERT of one random row.
pub fn insert(rng: &mut StdRng, spec: &Spec) -> String {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for col in spec.columns {
        let give = match col.write {
            Write::Required => true,
            Write::Default => rng.random_bool(0.6),
            Write::Generated => false,
        };
        if !give {
            continue;
        }
        names.push(ident(col));
        values.push(if col.nullable && rng.random_bool(0.25) {
            "NULL".to_owned()
        } else {
            sql(&value(rng, col), col.kind)
        });
    }
    if names.is_empty() {
        format!("INSERT INTO {} DEFAULT VALUES", spec.table())
    } else {
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            spec.table(),
            names.join(", "),
            values.join(", ")
        )
    }
}

/// One random write: inserts, updates of any columns (of one or several
/// rows), key changes and deletes.
pub fn write(rng: &mut StdRng, spec: &Spec) -> String {
    let table = spec.table();
    let key = spec.key_column();
    match rng.random_range(0..20) {
        0..=7 => insert(rng, spec),
        8..=14 => {
            let cols: Vec<&Column> = spec.columns.iter().filter(|c| !c.key).collect();
            let n = rng.random_range(1..=2.min(cols.len().max(1)));
            let sets: Vec<String> = cols
                .choose_multiple(rng, n)
                .map(|col| {
                    let v = if col.nullable && rng.random_bool(0.3) {
                        "NULL".to_owned()
                    } else {
                        sql(&value(rng, col), col.kind)
                    };
                    format!("{} = {v}", ident(col))
                })
                .collect();
            if sets.is_empty() {
                return insert(rng, spec);
            }
            let rows = rng.random_range(1..4);
            format!(
                "UPDATE {table} SET {} WHERE {}",
                sets.join(", "),
                some_rows(rng, spec, rows)
            )
        }
        15..=16 => {
            let k = ident(key);
            let new = match key.kind {
                ScalarKind::Uuid => "gen_random_uuid()".to_owned(),
                ScalarKind::Text => format!("{k} || 'x'"),
                _ => format!("{k} + 1000"),
            };
            format!(
                "UPDATE {table} SET {k} = {new} WHERE {}",
                some_rows(rng, spec, 1)
            )
        }
        _ => {
            let rows = rng.random_range(1..3);
            format!("DELETE FROM {table} WHERE {}", some_rows(rng, spec, rows))
        }
    }
}

/// A random live query on the table: its JSON and the SQL of a fresh run.
pub fn query(rng: &mut StdRng, spec: &Spec) -> (Value, String) {
    let q = counted_query(rng, spec);
    (q.json, q.sql)
}

/// A random live query, and the SQL of its rows and of its count.
pub struct RandomQuery {
    pub json: Value,
    /// Its rows, in order.
    pub sql: String,
    /// `Some`: the query asks for `count: true`, and this SQL (one
    /// `bigint` column `n`) is the count a client must end up with.
    pub count_sql: Option<String>,
}

/// A random live query that asks for its live count half of the time.
pub fn counted_query(rng: &mut StdRng, spec: &Spec) -> RandomQuery {
    let limit: Option<u32> = rng.random_bool(0.5).then(|| rng.random_range(1..8));
    let parts = parts(rng, spec, limit);
    RandomQuery {
        sql: parts.select(None),
        count_sql: parts.counted.then(|| parts.count(None)),
        json: parts.json,
    }
}

/// A random query's JSON and the pieces of its independent SQL.
struct Parts {
    json: Value,
    table: String,
    conds: Vec<String>,
    order: Vec<String>,
    limit: Option<u32>,
    counted: bool,
}

impl Parts {
    fn conditions(&self, and: Option<&str>) -> String {
        let mut conds = self.conds.clone();
        conds.extend(and.map(str::to_owned));
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// Its rows, in order, with one more condition.
    fn select(&self, and: Option<&str>) -> String {
        let mut sql = format!("SELECT * FROM {}{}", self.table, self.conditions(and));
        sql.push_str(&format!(" ORDER BY {}", self.order.join(", ")));
        if let Some(l) = self.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        sql
    }

    fn count(&self, and: Option<&str>) -> String {
        format!(
            "SELECT count(*) AS n FROM {}{}",
            self.table,
            self.conditions(and)
        )
    }
}

/// One relation a random query includes, and how to check a row's related
/// rows against a fresh run.
#[derive(Debug, Clone)]
pub struct RandomInclude {
    pub relation: &'static str,
    /// The related table.
    pub target: &'static str,
    /// The row's column whose value the related rows have in `remote`.
    pub local: &'static str,
    remote: &'static str,
    table: String,
    conds: Vec<String>,
    order: Vec<String>,
    limit: u32,
    counted: bool,
}

impl RandomInclude {
    /// The SQL of `row`'s related rows, and of their count when the include
    /// asks for one.
    pub fn sql_for(&self, row: &Value) -> (String, Option<String>) {
        let value = match &row[self.local] {
            Value::Null => "NULL".to_owned(),
            Value::String(s) => quote(s),
            other => other.to_string(),
        };
        let parts = Parts {
            json: Value::Null,
            table: self.table.clone(),
            conds: self.conds.clone(),
            order: self.order.clone(),
            limit: Some(self.limit),
            counted: self.counted,
        };
        let and = format!("\"{}\" = {value}", self.remote);
        (
            parts.select(Some(&and)),
            self.counted.then(|| parts.count(Some(&and))),
        )
    }
}

/// A random query on `spec` that includes some of its relations (to
/// tables in `all`), each with its own random filter, order, limit and
/// count for `has_many`.
pub fn included_query(
    rng: &mut StdRng,
    spec: &Spec,
    all: &[Spec],
) -> (RandomQuery, Vec<RandomInclude>) {
    let mut q = counted_query(rng, spec);
    let mut includes = Vec::new();
    let mut include = serde_json::Map::new();
    for relation in spec.relations {
        if rng.random_bool(0.25) {
            continue;
        }
        let Some(target) = all.iter().find(|s| s.name == relation.target) else {
            continue;
        };
        match relation.kind {
            RelationKind::HasMany => {
                let limit = rng.random_range(1..5);
                let p = parts(rng, target, Some(limit));
                let mut window = p.json.clone();
                if let Value::Object(m) = &mut window {
                    m.remove("table");
                }
                include.insert(relation.name.to_owned(), window);
                includes.push(RandomInclude {
                    relation: relation.name,
                    target: target.name,
                    local: relation.local,
                    remote: relation.remote,
                    table: p.table,
                    conds: p.conds,
                    order: p.order,
                    limit,
                    counted: p.counted,
                });
            }
            RelationKind::BelongsTo => {
                include.insert(relation.name.to_owned(), json!(true));
                includes.push(RandomInclude {
                    relation: relation.name,
                    target: target.name,
                    local: relation.local,
                    remote: relation.remote,
                    table: target.table(),
                    conds: Vec::new(),
                    order: vec![format!("\"{}\"", target.key)],
                    limit: 1,
                    counted: false,
                });
            }
        }
    }
    if !include.is_empty() {
        q.json["include"] = Value::Object(include);
    }
    (q, includes)
}

/// A random filter, order and count (half the time) on `spec`, with `limit`.
fn parts(rng: &mut StdRng, spec: &Spec, limit: Option<u32>) -> Parts {
    let mut filter = serde_json::Map::new();
    let mut conds = Vec::new();
    let options: Vec<(&Column, Op)> = spec
        .columns
        .iter()
        .flat_map(|c| c.filters.iter().map(move |op| (c, *op)))
        .collect();
    for _ in 0..rng.random_range(0..3) {
        let Some(&(col, op)) = options.choose(rng) else {
            break;
        };
        let field = format!(
            "{}_{}",
            col.name,
            serde_json::to_value(op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
        if filter.contains_key(&field) {
            continue;
        }
        let (operand, cond) = match op {
            Op::Eq => {
                let v = value(rng, col);
                (
                    wire(&v, col.kind),
                    format!("{} = {}", ident(col), sql(&v, col.kind)),
                )
            }
            Op::In => {
                let vs: Vec<Val> = (0..rng.random_range(1..4))
                    .map(|_| value(rng, col))
                    .collect();
                let list: Vec<String> = vs.iter().map(|v| sql(v, col.kind)).collect();
                (
                    Value::Array(vs.iter().map(|v| wire(v, col.kind)).collect()),
                    format!("{} IN ({})", ident(col), list.join(", ")),
                )
            }
            Op::Contains => {
                let text = *CONTAINS.choose(rng).unwrap_or(&"a");
                (
                    json!(text),
                    format!("strpos({}, {}) > 0", ident(col), quote(text)),
                )
            }
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                let v = value(rng, col);
                let sym = match op {
                    Op::Gt => ">",
                    Op::Gte => ">=",
                    Op::Lt => "<",
                    _ => "<=",
                };
                (
                    wire(&v, col.kind),
                    format!("{} {sym} {}", ordered(col), sql(&v, col.kind)),
                )
            }
            Op::IsNull => {
                let b = rng.random_bool(0.5);
                (
                    json!(b),
                    format!("{} IS {}NULL", ident(col), if b { "" } else { "NOT " }),
                )
            }
            // An operator this generator has no independent SQL for yet:
            // `tests/operators.rs` proves it; add it here to fuzz it too.
            _ => continue,
        };
        filter.insert(field, operand);
        conds.push(cond);
    }
    let orderable: Vec<&Column> = spec.columns.iter().filter(|c| c.order).collect();
    let by = *orderable.choose(rng).unwrap_or(&spec.key_column());
    let desc = rng.random_bool(0.5);
    let mut q = json!({"table": spec.name, "order": {"by": by.name, "dir": if desc { "desc" } else { "asc" }}});
    if !filter.is_empty() {
        q["filter"] = Value::Object(filter);
    }
    if let Some(l) = limit {
        q["limit"] = json!(l);
    }
    let counted = rng.random_bool(0.5);
    if counted {
        q["count"] = json!(true);
    }
    let dir = if desc { "DESC" } else { "ASC" };
    let key = spec.key_column();
    let mut order = Vec::new();
    if !by.key {
        let nulls = if desc { "NULLS FIRST" } else { "NULLS LAST" };
        order.push(format!("{} {dir} {nulls}", ordered(by)));
    }
    order.push(format!("{} {dir}", ordered(key)));
    Parts {
        json: q,
        table: spec.table(),
        conds,
        order,
        limit,
        counted,
    }
}

/// Runs `statements` in one transaction, each under a savepoint so that one
/// a constraint refuses (a foreign key, a duplicate key) is rolled back
/// alone and the rest commit.
pub async fn transaction(conn: &mut diesel_async::AsyncPgConnection, statements: &[String]) {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute("BEGIN").await.unwrap();
    for stmt in statements {
        if conn
            .batch_execute(&format!("SAVEPOINT s; {stmt}; RELEASE SAVEPOINT s"))
            .await
            .is_err()
        {
            conn.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
        }
    }
    conn.batch_execute("COMMIT").await.unwrap();
}
