//! Rust equals SQL, per operator and per column type: every filter
//! operator's Rust predicate selects exactly the rows its SQL selects on
//! every column type it filters (`pglive_schema::ops::Supports`), and the
//! Rust order is PostgreSQL's `ORDER BY`, NULLs included, on random values
//! of every type a live column may have. Because every table's
//! filters are built from these operators, this proves the in-memory filters
//! of all declared tables at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use chrono::{DateTime, NaiveDate, Utc};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use pglive_schema::TaskStatus;
use pglive_schema::live::{Direction, cmp_nullable, directed, order_term};
use pglive_schema::ops::{self, ColumnSql, Operand, Operator, Supports};
use pglive_schema::scalar::{Int8, Ordered, Scalar, ScalarKind};
use pglive_schema::sql::Sql;
use pglive_testkit::TestDb;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// Random values of a type, from a small domain so that conditions hit.
trait Sample: Scalar {
    fn sample(rng: &mut StdRng) -> Self;
}

impl Sample for String {
    fn sample(rng: &mut StdRng) -> String {
        const ALPHABET: &[&str] = &[
            "a", "b", "A", "Z", "é", "_", "%", "\\", " ", "ab", "a_b", "ß", "😀", "0",
        ];
        let n = rng.random_range(0..4);
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect()
    }
}

impl Sample for i16 {
    fn sample(rng: &mut StdRng) -> i16 {
        rng.random_range(-3..4)
    }
}

impl Sample for i32 {
    fn sample(rng: &mut StdRng) -> i32 {
        if rng.random_bool(0.1) {
            if rng.random_bool(0.5) {
                i32::MIN
            } else {
                i32::MAX
            }
        } else {
            rng.random_range(-3..4)
        }
    }
}

impl Sample for Int8 {
    fn sample(rng: &mut StdRng) -> Int8 {
        Int8(if rng.random_bool(0.2) {
            9_007_199_254_740_993 + rng.random_range(-2..3)
        } else {
            rng.random_range(-3..4)
        })
    }
}

impl Sample for bool {
    fn sample(rng: &mut StdRng) -> bool {
        rng.random_bool(0.5)
    }
}

impl Sample for NaiveDate {
    fn sample(rng: &mut StdRng) -> NaiveDate {
        let base = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        if rng.random_bool(0.1) {
            NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap()
        } else {
            base + chrono::Duration::days(rng.random_range(-3..4))
        }
    }
}

impl Sample for DateTime<Utc> {
    fn sample(rng: &mut StdRng) -> DateTime<Utc> {
        // Nanoseconds on purpose: operands are normalized to what
        // PostgreSQL keeps before either side compares.
        DateTime::from_timestamp(
            1_790_000_000 + rng.random_range(-2..3),
            rng.random_range(0..3) * 400,
        )
        .unwrap()
    }
}

impl Sample for Uuid {
    fn sample(rng: &mut StdRng) -> Uuid {
        Uuid::from_u128(rng.random_range(0..4) << 120 | rng.random_range(0..3))
    }
}

impl Sample for TaskStatus {
    fn sample(rng: &mut StdRng) -> TaskStatus {
        TaskStatus::ALL[rng.random_range(0..TaskStatus::ALL.len())]
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    id: i32,
}

fn sql_type(kind: ScalarKind) -> &'static str {
    match kind {
        ScalarKind::Bool => "boolean",
        ScalarKind::Int2 => "smallint",
        ScalarKind::Int4 => "integer",
        ScalarKind::Int8 => "bigint",
        ScalarKind::Text | ScalarKind::Enum => "text",
        ScalarKind::Date => "date",
        ScalarKind::Timestamptz => "timestamptz",
        ScalarKind::Uuid => "uuid",
    }
}

async fn ids(conn: &mut AsyncPgConnection, sql: Sql) -> Vec<i32> {
    let text = sql.to_string();
    let rows: Vec<Id> = sql
        .load(conn)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    rows.into_iter().map(|r| r.id).collect()
}

/// The ids (1-based positions) of the values `keep` accepts.
fn expect<C>(values: &[C], keep: impl Fn(&C) -> bool) -> Vec<i32> {
    (1..)
        .zip(values)
        .filter(|(_, v)| keep(v))
        .map(|(i, _)| i)
        .collect()
}

/// A table `probe` of random values of one type, NULLs included, on which
/// each operator's SQL runs and whose values its Rust predicate tests.
struct Probe<V> {
    conn: AsyncPgConnection,
    rng: StdRng,
    /// The column's value per row, in id order: a nullable column's.
    values: Vec<Option<V>>,
    col: ColumnSql,
    label: &'static str,
}

impl<V: Sample> Probe<V> {
    async fn new(db: &TestDb, seed: u64, collation: &str) -> Probe<V> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut conn = db.conn().await;
        let collate = if V::TEXT {
            format!(" COLLATE \"{collation}\"")
        } else {
            String::new()
        };
        conn.batch_execute(&format!(
            "DROP TABLE IF EXISTS probe; CREATE TABLE probe (id serial PRIMARY KEY, v {}{collate})",
            sql_type(V::KIND)
        ))
        .await
        .unwrap();
        let mut values: Vec<Option<V>> = Vec::new();
        for _ in 0..40 {
            let value = rng.random_bool(0.85).then(|| {
                let mut v = V::sample(&mut rng);
                v.normalize();
                v
            });
            let mut sql = Sql::new("INSERT INTO probe (v) VALUES (");
            match &value {
                Some(v) => sql.bind(v.to_sql()),
                None => sql.push("NULL"),
            }
            sql.push(")");
            sql.execute(&mut conn).await.unwrap();
            values.push(value);
        }
        Probe {
            conn,
            rng,
            values,
            col: ColumnSql {
                ident: "\"v\"",
                text: V::TEXT,
            },
            label: std::any::type_name::<V>(),
        }
    }

    /// Checks one operator with one operand: the same rows, every time.
    /// The column is nullable, so this is the `Option<V>` column type; a
    /// `V` one runs the same generic code with no NULL to see.
    async fn check<O: Operator>(&mut self, mut operand: Operand<O, Option<V>>)
    where
        Option<V>: Supports<O>,
        Operand<O, Option<V>>: std::fmt::Debug,
    {
        <Option<V> as Supports<O>>::normalize(&mut operand);
        let mut sql = Sql::new("SELECT id FROM probe WHERE ");
        <Option<V> as Supports<O>>::sql(&self.col, &operand, &mut sql);
        sql.push(" ORDER BY id");
        let got = ids(&mut self.conn, sql).await;
        let want = expect(&self.values, |v| {
            <Option<V> as Supports<O>>::test(v, &operand)
        });
        assert_eq!(
            got,
            want,
            "{} {:?} {operand:?}: SQL and Rust disagree",
            self.label,
            O::OP
        );
    }

    /// The operators every column type has: `eq`, `in` and (nullable) `is_null`.
    async fn check_equality(&mut self) {
        for _ in 0..25 {
            let value = V::sample(&mut self.rng);
            self.check::<ops::Eq>(value).await;
            let list: Vec<V> = (0..self.rng.random_range(1..4))
                .map(|_| V::sample(&mut self.rng))
                .collect();
            self.check::<ops::In>(list).await;
            let null = self.rng.random_bool(0.5);
            self.check::<ops::IsNull>(null).await;
        }
    }

    /// Rust's order is `ORDER BY`'s, both directions, NULLs included.
    async fn check_order_by(&mut self) {
        for dir in [Direction::Asc, Direction::Desc] {
            let mut sql = Sql::new("SELECT id FROM probe ORDER BY ");
            order_term(&mut sql, &self.col, true, dir);
            sql.push(", id");
            let got = ids(&mut self.conn, sql).await;
            let mut want: Vec<(i32, Option<&V>)> =
                (1..).zip(self.values.iter().map(Option::as_ref)).collect();
            want.sort_by(|a, b| directed(dir, cmp_nullable(a.1, b.1)).then(a.0.cmp(&b.0)));
            let want: Vec<i32> = want.into_iter().map(|(i, _)| i).collect();
            assert_eq!(
                got, want,
                "{}: ORDER BY {dir:?} differs from Rust's order",
                self.label
            );
        }
    }
}

impl<V: Sample + Ordered> Probe<V> {
    /// The comparisons, which only ordered types have.
    async fn check_comparisons(&mut self) {
        for _ in 0..25 {
            let value = V::sample(&mut self.rng);
            self.check::<ops::Gt>(value).await;
            let value = V::sample(&mut self.rng);
            self.check::<ops::Gte>(value).await;
            let value = V::sample(&mut self.rng);
            self.check::<ops::Lt>(value).await;
            let value = V::sample(&mut self.rng);
            self.check::<ops::Lte>(value).await;
        }
    }
}

/// Every operator an ordered type has, and its order.
async fn check_ordered<V: Sample + Ordered>(db: &TestDb, seed: u64, collation: &str) -> Probe<V> {
    let mut probe = Probe::<V>::new(db, seed, collation).await;
    probe.check_equality().await;
    probe.check_comparisons().await;
    probe.check_order_by().await;
    probe
}

/// Text has `contains` too.
async fn check_text(db: &TestDb, seed: u64, collation: &str) {
    let mut probe = check_ordered::<String>(db, seed, collation).await;
    for _ in 0..40 {
        let operand = String::sample(&mut probe.rng);
        probe.check::<ops::Contains>(operand).await;
    }
}

/// A flag has no order for comparisons, but `ORDER BY` still sorts it.
async fn check_flag(db: &TestDb, seed: u64, collation: &str) {
    let mut probe = Probe::<bool>::new(db, seed, collation).await;
    probe.check_equality().await;
    probe.check_order_by().await;
}

/// A collation other than "C" when the server has one, so that the SQL's own
/// `COLLATE "C"` is what makes text compare byte-wise.
async fn collation(db: &TestDb) -> String {
    #[derive(QueryableByName)]
    struct C {
        #[diesel(sql_type = diesel::sql_types::Text)]
        collname: String,
    }
    let mut conn = db.conn().await;
    let found: Vec<C> = diesel::sql_query(
        "SELECT collname::text FROM pg_collation \
         WHERE collname IN ('en_US', 'en_US.utf8', 'en-x-icu', 'und-x-icu', 'C.utf8', 'C.UTF-8') \
           AND collencoding IN (-1, (SELECT encoding FROM pg_database WHERE datname = current_database())) \
         ORDER BY collname = 'C.utf8' OR collname = 'C.UTF-8', collname LIMIT 1",
    )
    .load(&mut conn)
    .await
    .unwrap();
    found
        .into_iter()
        .next()
        .map_or_else(|| "default".to_owned(), |c| c.collname)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_agrees_with_postgres_on_every_type() {
    let db = TestDb::new().await;
    let collation = collation(&db).await;
    println!("text columns collate as {collation:?}");
    for seed in [1u64, 2, 3] {
        check_text(&db, seed, &collation).await;
        check_ordered::<i16>(&db, seed, &collation).await;
        check_ordered::<i32>(&db, seed, &collation).await;
        check_ordered::<Int8>(&db, seed, &collation).await;
        check_flag(&db, seed, &collation).await;
        check_ordered::<NaiveDate>(&db, seed, &collation).await;
        check_ordered::<DateTime<Utc>>(&db, seed, &collation).await;
        check_ordered::<Uuid>(&db, seed, &collation).await;
        check_ordered::<TaskStatus>(&db, seed, &collation).await;
    }
}
