//! What group and reader tasks need to read, and nothing more: the pool, the
//! permits that bound reads in flight, the budget that bounds what groups
//! hold, metrics, limits, and the tracker their tasks run on.
//!
//! Every read for a group runs here, in the group's security [`Context`]:
//! with a role, inside a transaction that switches to it first
//! (`SET LOCAL ROLE` and `request.jwt.claims`, the PostgREST convention), so
//! that PostgreSQL's row-level security decides what the group sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use pglive_schema::sql::{Sql, SqlValue};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::budget::{Bounds, Budget, Resource};
use super::outbox::Member;
use super::table::{Context, Key, LiveTable};
use crate::metrics::Metrics;

/// Bounds on the engine's work and memory, from configuration.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Reads in flight at once, across all groups and readers.
    pub max_concurrent_refreshes: usize,
    /// Rows one query may return before its subscription is refused.
    pub max_rows: u32,
    /// Changed keys a reader remembers before escalating to "refresh all".
    pub max_pending_keys: usize,
    /// Groups (distinct queries per context) the server keeps at once.
    pub max_groups: usize,
    /// Rows all groups may hold together.
    pub max_rows_held: usize,
    /// Times in a row a group's query may be refused by the database before
    /// its members are told `query_failed` and the group stops.
    pub max_query_failures: u32,
    /// Diffs a group keeps, for clients that resume after a reconnect.
    pub history_diffs: usize,
    /// Bytes of diffs one group keeps.
    pub history_bytes: usize,
    /// Bytes of diffs all groups keep together.
    pub max_history_bytes: usize,
    /// Subscriptions all connections may hold together.
    pub max_subscriptions: usize,
    /// The fraction of each budget above (groups, rows held, history,
    /// subscriptions) one identity is sure to get; see `budget`.
    pub identity_share: f64,
    /// How long a group outlives its last member, kept current, so that
    /// subscribers who come back (a reconnect storm, a recycled load
    /// balancer) resume from its history instead of re-running the query.
    /// Zero ends a group with its last member.
    pub group_linger: Duration,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_concurrent_refreshes: 8,
            max_rows: 50_000,
            max_pending_keys: 1_000,
            max_groups: 10_000,
            max_rows_held: 2_000_000,
            max_query_failures: 3,
            history_diffs: 32,
            history_bytes: 256 * 1024,
            max_history_bytes: 64 * 1024 * 1024,
            max_subscriptions: 10_000 * 100,
            identity_share: super::budget::DEFAULT_SHARE,
            group_linger: Duration::from_secs(15),
        }
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database cannot be reached or dropped the connection; retrying
    /// later will do. Not the query's fault.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement (a policy, a permission, a value
    /// it cannot handle). Retrying may not help.
    #[error("refused by the database: {0}")]
    Rejected(String),
    #[error("shutting down")]
    ShuttingDown,
}

impl ReadError {
    fn from_diesel(err: DieselError) -> ReadError {
        match err {
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::SerializationFailure,
                info,
            ) => ReadError::Unavailable(info.message().to_owned()),
            DieselError::DatabaseError(_, info) => ReadError::Rejected(info.message().to_owned()),
            DieselError::BrokenTransactionManager => ReadError::Unavailable(err.to_string()),
            other => ReadError::Rejected(other.to_string()),
        }
    }

    /// What kind of refusal this was, in words fit for a client (never SQL
    /// or the database's own message).
    pub fn class(&self) -> &'static str {
        match self {
            ReadError::Unavailable(_) => "database unavailable",
            ReadError::ShuttingDown => "server shutting down",
            ReadError::Rejected(message) => {
                let m = message.to_ascii_lowercase();
                if m.contains("permission denied") || m.contains("row-level security") {
                    "permission denied"
                } else if m.contains("out of range")
                    || m.contains("invalid input")
                    || m.contains("too long")
                {
                    "a value the database cannot handle"
                } else {
                    "an error in the database"
                }
            }
        }
    }
}

/// The shared read side of the engine. One per server; tasks hold an `Arc`.
#[derive(Debug)]
pub struct Reads {
    pool: Pool<AsyncPgConnection>,
    /// Bounds reads in flight. A task holds a permit only while its
    /// statement runs; closed at shutdown so that waiting tasks give up.
    permits: Semaphore,
    pub metrics: Arc<Metrics>,
    pub limits: EngineLimits,
    pub budget: Budget,
    /// Cancelled when the server shuts down; readers stop on it.
    pub shutdown: CancellationToken,
    /// Group and reader tasks run on it, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// This process: no version of another process is ever taken for ours.
    epoch: String,
    /// Groups created so far: no version of an earlier group of the same
    /// query is taken for a later one's.
    incarnations: AtomicU64,
}

impl Reads {
    pub fn new(
        pool: Pool<AsyncPgConnection>,
        metrics: Arc<Metrics>,
        limits: EngineLimits,
    ) -> Reads {
        Reads {
            pool,
            permits: Semaphore::new(limits.max_concurrent_refreshes.max(1)),
            budget: Budget::new(Bounds {
                groups: limits.max_groups,
                rows: limits.max_rows_held,
                history_bytes: limits.max_history_bytes,
                subscriptions: limits.max_subscriptions,
                share: limits.identity_share,
            }),
            epoch: format!("{:016x}", rand::random::<u64>()),
            incarnations: AtomicU64::new(0),
            metrics,
            limits,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Counts a new subscription of `member`'s identity; false when its
    /// share or the server's bound is reached.
    pub fn subscribed(&self, member: &Member) -> bool {
        let taken = self
            .budget
            .take(&member.account, Resource::Subscriptions, 1);
        if taken {
            self.metrics.subscriptions.inc();
        }
        taken
    }

    /// The subscription of `member` is gone.
    pub fn unsubscribed(&self, member: &Member) {
        self.budget
            .release(&member.account, Resource::Subscriptions, 1);
        self.metrics.subscriptions.dec();
    }

    pub fn pool(&self) -> &Pool<AsyncPgConnection> {
        &self.pool
    }

    /// A new group's epoch: this process and this group's incarnation.
    pub fn next_epoch(&self) -> Arc<str> {
        let n = self.incarnations.fetch_add(1, Ordering::Relaxed);
        format!("{}.{n}", self.epoch).into()
    }

    /// Stops handing out permits: reads waiting for one end with `ShuttingDown`.
    pub fn close(&self) {
        self.permits.close();
        self.shutdown.cancel();
    }

    /// The query's rows in order, at most `limit`.
    pub async fn load<T: LiveTable>(
        &self,
        ctx: &Context,
        query: &T::Query,
        limit: i64,
    ) -> Result<Vec<Arc<T>>, ReadError> {
        self.read::<T>(ctx, T::select(query, limit)).await
    }

    /// The rows with these keys, unfiltered.
    pub async fn fetch<T: LiveTable>(
        &self,
        ctx: &Context,
        keys: &[Key<T>],
    ) -> Result<Vec<Arc<T>>, ReadError> {
        self.metrics.refreshes_keyed.inc();
        self.read::<T>(ctx, T::fetch(keys)).await
    }

    /// How many rows pass the query's filter, whatever its limit.
    pub async fn count<T: LiveTable>(
        &self,
        ctx: &Context,
        query: &T::Query,
    ) -> Result<u64, ReadError> {
        let (_permit, mut conn) = self.connection().await?;
        self.metrics.counts.inc();
        let started = Instant::now();
        let counted = rows_in::<Count>(&mut conn, ctx, T::count(query)).await;
        self.metrics
            .refresh_seconds
            .observe(started.elapsed().as_secs_f64());
        match counted {
            Ok(rows) => Ok(rows.first().map_or(0, |c| c.n.max(0) as u64)),
            Err(err) => {
                self.metrics.refresh_errors.inc();
                Err(ReadError::from_diesel(err))
            }
        }
    }

    /// The rows of an included relation's read (`group::related`), in
    /// `ctx`: row-level security applies to the related table too.
    pub async fn related<R>(&self, ctx: &Context, sql: Sql) -> Result<Vec<R>, ReadError>
    where
        R: diesel::QueryableByName<diesel::pg::Pg> + Send + 'static,
    {
        let (_permit, mut conn) = self.connection().await?;
        self.metrics.related_reads.inc();
        let started = Instant::now();
        let read = rows_in::<R>(&mut conn, ctx, sql).await;
        self.metrics
            .refresh_seconds
            .observe(started.elapsed().as_secs_f64());
        match read {
            Ok(rows) => {
                self.metrics.related_rows.inc_by(rows.len() as u64);
                Ok(rows)
            }
            Err(err) => {
                self.metrics.refresh_errors.inc();
                Err(ReadError::from_diesel(err))
            }
        }
    }

    /// A read permit and a pooled connection, held together for one read:
    /// the permit bounds reads in flight, not connections checked out.
    async fn connection(
        &self,
    ) -> Result<
        (
            tokio::sync::SemaphorePermit<'_>,
            diesel_async::pooled_connection::bb8::PooledConnection<'_, AsyncPgConnection>,
        ),
        ReadError,
    > {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ReadError::ShuttingDown)?;
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| ReadError::Unavailable(e.to_string()))?;
        Ok((permit, conn))
    }

    /// Whether the database answers at all: tells a refused query from an
    /// unreachable database, which diesel does not always distinguish.
    pub async fn probe(&self) -> bool {
        let probe = async {
            let mut conn = self.pool.get().await.ok()?;
            conn.batch_execute("SELECT 1").await.ok()
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Some(()))
        )
    }

    async fn read<T: LiveTable>(&self, ctx: &Context, sql: Sql) -> Result<Vec<Arc<T>>, ReadError> {
        let (_permit, mut conn) = self.connection().await?;
        let started = Instant::now();
        let result = match (&ctx.role, &ctx.claims) {
            (None, None) => collect::<T>(&mut conn, sql).await,
            (role, claims) => {
                let role = role.clone();
                let claims = claims.clone();
                let conn: &mut AsyncPgConnection = &mut conn;
                conn.transaction(async move |conn: &mut AsyncPgConnection| {
                    enter(conn, role.as_deref(), claims.as_deref()).await?;
                    collect::<T>(conn, sql).await
                })
                .await
            }
        };
        self.metrics
            .refresh_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.refreshes.inc();
        match result {
            Ok(read) => {
                self.metrics.rows_read.inc_by(read.rows.len() as u64);
                if read.skipped > 0 {
                    self.metrics.rows_skipped.inc_by(read.skipped);
                    tracing::warn!(
                        table = T::NAME,
                        skipped = read.skipped,
                        error = read.first_error.as_deref().unwrap_or(""),
                        "skipped rows that cannot be decoded; they are left out of live results"
                    );
                }
                Ok(read.rows)
            }
            Err(err) => {
                self.metrics.refresh_errors.inc();
                Err(ReadError::from_diesel(err))
            }
        }
    }
}

/// Runs `sql` for its rows in `ctx`: when the context has a role or claims,
/// inside a transaction that switches to them first, so row-level security
/// decides (writes included: `WITH CHECK` policies apply).
pub async fn rows_in<T>(
    conn: &mut AsyncPgConnection,
    ctx: &Context,
    sql: Sql,
) -> Result<Vec<T>, DieselError>
where
    T: diesel::QueryableByName<diesel::pg::Pg> + Send + 'static,
{
    if ctx.role.is_none() && ctx.claims.is_none() {
        return diesel_async::RunQueryDsl::load(sql, conn).await;
    }
    let role = ctx.role.clone();
    let claims = ctx.claims.clone();
    conn.transaction(async move |conn: &mut AsyncPgConnection| {
        enter(conn, role.as_deref(), claims.as_deref()).await?;
        diesel_async::RunQueryDsl::load(sql, conn).await
    })
    .await
}

/// Switches the transaction to the context: the role and the claims, both
/// local to the transaction.
async fn enter(
    conn: &mut AsyncPgConnection,
    role: Option<&str>,
    claims: Option<&str>,
) -> Result<(), DieselError> {
    let mut sql = Sql::new("SELECT set_config('request.jwt.claims', ");
    sql.bind(SqlValue::Text(claims.unwrap_or("").to_owned()));
    sql.push(", true)");
    if let Some(role) = role {
        sql.push(", set_config('role', ");
        sql.bind(SqlValue::Text(role.to_owned()));
        sql.push(", true)");
    }
    diesel_async::RunQueryDsl::execute(sql, conn)
        .await
        .map(|_| ())
}

/// The one column of a count's statement.
#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

struct Read<T> {
    rows: Vec<Arc<T>>,
    skipped: u64,
    first_error: Option<String>,
}

/// Runs `sql` and decodes its rows one by one: a row that cannot be decoded
/// (a date past chrono's range, say) is skipped and counted, never failing
/// the read, so one bad row cannot stop its table.
async fn collect<T: LiveTable>(
    conn: &mut AsyncPgConnection,
    sql: Sql,
) -> Result<Read<T>, DieselError> {
    let mut stream = diesel_async::RunQueryDsl::load_stream::<T>(sql, conn).await?;
    let mut read = Read {
        rows: Vec::new(),
        skipped: 0,
        first_error: None,
    };
    while let Some(row) = stream.next().await {
        match row {
            Ok(row) => read.rows.push(Arc::new(row)),
            Err(DieselError::DeserializationError(err)) => {
                read.skipped += 1;
                read.first_error.get_or_insert_with(|| err.to_string());
            }
            Err(err) => return Err(err),
        }
    }
    Ok(read)
}
