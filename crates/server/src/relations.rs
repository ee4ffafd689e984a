//! The start-up check of declared relations: each `has_many` and
//! `belongs_to` must be backed by a foreign key in the database, so that
//! what a relation promises (related rows are the target's rows whose
//! column holds the value) is what the schema enforces.

use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use pglive_schema::live::{Listed, Relation, RelationKind, TableVisitor};
use pglive_schema::sql::{Sql, SqlValue};
use pglive_schema::tables::visit_tables;

/// How long the check waits for the database before leaving it for later.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A declared relation the database does not back.
#[derive(Debug, thiserror::Error)]
#[error(
    "relation `{relation}` of table {table} needs a foreign key {referencing}({column}) REFERENCES {referenced}({referenced_column}); the database has none (add it in a migration or remove the relation)"
)]
pub struct MissingForeignKey {
    pub table: String,
    pub relation: &'static str,
    pub referencing: String,
    pub column: &'static str,
    pub referenced: String,
    pub referenced_column: &'static str,
}

/// One relation to check: (schema, table, relation).
struct Declared(Vec<(&'static str, &'static str, &'static Relation)>);

impl TableVisitor for Declared {
    fn visit<T: Listed>(&mut self) {
        for relation in T::RELATIONS {
            self.0.push((T::SCHEMA, T::NAME, relation));
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Checks every declared relation. When the database does not answer, the
/// check is skipped with a warning (the server starts and reports not
/// ready, as it does for everything else that needs the database).
pub async fn check(pool: &Pool<AsyncPgConnection>) -> Result<(), MissingForeignKey> {
    let mut declared = Declared(Vec::new());
    visit_tables(&mut declared);
    let checks = async {
        let mut conn = pool.get().await.ok()?;
        let mut missing = None;
        for (schema, table, relation) in declared.0 {
            let (referencing, column, referenced, referenced_column) = match relation.kind {
                RelationKind::HasMany => (relation.target, relation.remote, table, relation.local),
                RelationKind::BelongsTo => {
                    (table, relation.local, relation.target, relation.remote)
                }
            };
            let mut sql = Sql::new(
                "SELECT count(*) AS n FROM pg_constraint c \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                 JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = c.confkey[1] \
                 WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 \
                 AND c.conrelid = to_regclass(",
            );
            sql.bind(SqlValue::Text(format!("\"{schema}\".\"{referencing}\"")));
            sql.push(") AND c.confrelid = to_regclass(");
            sql.bind(SqlValue::Text(format!("\"{schema}\".\"{referenced}\"")));
            sql.push(") AND a.attname = ");
            sql.bind(SqlValue::Text(column.to_owned()));
            sql.push(" AND f.attname = ");
            sql.bind(SqlValue::Text(referenced_column.to_owned()));
            let found: Vec<Found> = diesel_async::RunQueryDsl::load(sql, &mut *conn)
                .await
                .ok()?;
            if found.first().is_none_or(|f| f.n == 0) {
                missing = Some(MissingForeignKey {
                    table: format!("{schema}.{table}"),
                    relation: relation.name,
                    referencing: format!("{schema}.{referencing}"),
                    column,
                    referenced: format!("{schema}.{referenced}"),
                    referenced_column,
                });
                break;
            }
        }
        Some(missing)
    };
    match tokio::time::timeout(CHECK_TIMEOUT, checks).await {
        Ok(Some(None)) => Ok(()),
        Ok(Some(Some(missing))) => Err(missing),
        Ok(None) | Err(_) => {
            tracing::warn!(
                "cannot check the declared relations' foreign keys yet (the database does not answer)"
            );
            Ok(())
        }
    }
}
