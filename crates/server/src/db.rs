//! Database access: the connection pool and the embedded migrations.

use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::time::Duration;

/// Every migration in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("migration failed: {0}")]
    Migrate(String),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
}

/// A connection that could not be made, saying where to and why: the
/// driver's error is kept as the source, since its message alone ("error
/// connecting to server") names neither the address nor the cause
/// ("Connection refused"), and diesel's `establish` keeps only that message.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to the database at {target}")]
    Driver {
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot set up the connection to the database at {target}")]
    Setup {
        target: String,
        #[source]
        source: diesel::ConnectionError,
    },
}

/// Connects to `url` as diesel's `establish` does, keeping the cause of a
/// failure (see [`ConnectError`]).
pub async fn connect(url: &str) -> Result<AsyncPgConnection, ConnectError> {
    let target = || target(url).unwrap_or_else(|err| format!("an unparseable URL ({err})"));
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|source| ConnectError::Driver {
            target: target(),
            source,
        })?;
    AsyncPgConnection::try_from_client_and_connection(client, connection)
        .await
        .map_err(|source| ConnectError::Setup {
            target: target(),
            source,
        })
}

/// A database URL that is not a PostgreSQL connection string: retrying
/// cannot fix it, so the server refuses to start with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadUrl(String);

/// Where `url` points, for log lines: each host's `host:port` (a socket
/// directory for a Unix socket), never the user, password or options. A
/// connection error alone does not say which address refused it.
pub fn target(url: &str) -> Result<String, BadUrl> {
    use tokio_postgres::config::Host;
    let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        // The parse error is the kind ("invalid connection string") and its
        // cause (what is wrong); neither quotes the URL, so no password leaks.
        BadUrl(Causes(&e).to_string())
    })?;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // One port applies to every host; otherwise they pair up.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect();
    Ok(if hosts.is_empty() {
        // libpq's default, which tokio-postgres does not apply itself.
        "localhost:5432 (no host in the URL)".to_owned()
    } else {
        hosts.join(",")
    })
}

/// An error with every cause in its source chain, `outer: inner: ...`. The
/// driver's errors say only their kind ("error connecting to server") and
/// keep the cause ("Connection refused") as their source, which `%err`
/// alone drops. A cause already spelled out by the message above it is not
/// repeated.
pub struct Causes<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let said = cause.to_string();
            if !said.is_empty() && !text.ends_with(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
            source = cause.source();
        }
        f.write_str(&text)
    }
}

/// A pool for refresh queries and REST writes. Connections are made lazily,
/// so the server starts (and reports not-ready) while the database is down.
pub async fn pool(url: &str, max_size: u32) -> Result<Pool<AsyncPgConnection>, DbError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Pool::builder()
        .max_size(max_size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(5))
        // No `SELECT 1` before every checkout: it would double the round
        // trips of each refresh. A dead connection fails its query instead,
        // which refreshes retry and REST writes answer with 503.
        .test_on_check_out(false)
        .build(manager)
        .await
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Applies pending migrations; returns the versions applied. Needs a
/// multi-threaded runtime (the harness blocks in place).
pub async fn migrate(url: &str) -> Result<Vec<String>, DbError> {
    let conn = connect(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbError::Migrate(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// Reverts every applied migration (used by the migration round-trip test).
pub async fn revert_all(url: &str) -> Result<usize, DbError> {
    let conn = connect(url).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let reverted = harness
        .revert_all_migrations(MIGRATIONS)
        .map_err(|e| DbError::Migrate(e.to_string()))?;
    Ok(reverted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_names_hosts_and_ports_never_the_password() {
        let named = target("postgres://u:secret@db.example:6432/app").unwrap();
        assert_eq!(named, "db.example:6432");
        assert_eq!(
            target("postgres://u@127.0.0.1/app").unwrap(),
            "127.0.0.1:5432"
        );
        assert_eq!(
            target("host=a,b port=1,2 user=u").unwrap(),
            "a:1,b:2",
            "key=value strings pair hosts with ports"
        );
        assert_eq!(target("postgres://u@[::1]:7/app").unwrap(), "[::1]:7");
    }

    #[test]
    fn an_unparseable_url_is_refused_without_quoting_it() {
        let err = target("not-a-url-secret").unwrap_err().to_string();
        assert!(err.contains("invalid connection string"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn causes_spell_out_the_source_chain_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Repeats(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("error connecting to server")]
        struct Silent(#[source] std::io::Error);
        let refused =
            || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            Causes(&Silent(refused())).to_string(),
            "error connecting to server: Connection refused"
        );
        assert_eq!(
            Causes(&Repeats(refused())).to_string(),
            "outer: Connection refused"
        );
    }
}
