use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use pglive_server::config::{Cli, Command, LogFormat, SlotAction};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = cli.config;
    let filter = EnvFilter::try_new(&config.log).context("invalid --log filter")?;
    // Colour only for a person at a terminal: escape codes in a log file or
    // a collector are noise. NO_COLOR (https://no-color.org: set and not
    // empty) turns it off there too.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!no_color && std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }

    if let Some(Command::Token(args)) = &cli.command {
        println!("{}", mint(&config, args).await?);
        return Ok(());
    }
    if let Some(Command::Migrate) = cli.command {
        let url = config.migrate_url().context(
            "no database URL: set MIGRATE_DATABASE_URL or DATABASE_URL, or pass --migrate-url or --database-url",
        )?;
        pglive_server::db::target(url).context(
            "MIGRATE_DATABASE_URL (or DATABASE_URL, --migrate-url, --database-url) is not a PostgreSQL connection string",
        )?;
        let applied = pglive_server::db::migrate(url).await?;
        if applied.is_empty() {
            println!("no pending migrations");
        } else {
            println!(
                "applied {} migration(s): {}",
                applied.len(),
                applied.join(", ")
            );
        }
        return Ok(());
    }

    if let Some(Command::Slot {
        action: SlotAction::Drop,
    }) = cli.command
    {
        let (slot, dropped) = pglive_server::drop_slot(&config).await?;
        if dropped {
            println!("dropped replication slot {slot}");
        } else {
            println!("no replication slot {slot}");
        }
        return Ok(());
    }

    fit_descriptors(&mut config);
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    // Harnesses started with port 0 read the real address from this line,
    // printed only once the start-up checks passed and the server serves.
    pglive_server::run_announced(config, listener, shutdown_signal(), |addr| {
        println!("pglive listening on http://{addr}");
    })
    .await?;
    Ok(())
}

/// `pglive token`: a token signed with `--jwt-secret`. With a database URL
/// its role first passes the check the server makes of every token's (no
/// superuser, no `BYPASSRLS`, not the server's own role, no table owner,
/// unless `--jwt-roles` names it).
async fn mint(
    config: &pglive_server::config::Config,
    args: &pglive_server::config::TokenArgs,
) -> anyhow::Result<String> {
    let auth = pglive_server::Authenticator::new(&config.auth_config())?
        .context("pglive token needs --jwt-secret (or PGLIVE_JWT_SECRET)")?;
    let mut claims = serde_json::Map::new();
    if let Some(sub) = &args.sub {
        claims.insert("sub".into(), sub.clone().into());
    }
    if let Some(role) = &args.role {
        auth.admits(role)?;
        match &config.database_url {
            Some(url) => {
                let pool = pglive_server::db::pool(url, 1).await?;
                auth.check_role(&pool, role).await?;
            }
            None => eprintln!(
                "pglive token: role {role:?} not checked against PostgreSQL (no DATABASE_URL); the server checks it when the token arrives"
            ),
        }
        claims.insert(config.jwt_role_claim.clone(), role.clone().into());
    }
    for claim in &args.claims {
        let (name, value) = claim
            .split_once('=')
            .with_context(|| format!("--claim {claim:?}: expected NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
        claims.insert(name.to_owned(), value);
    }
    claims.insert(
        "exp".into(),
        pglive_server::unix_now()
            .saturating_add(args.ttl_secs)
            .into(),
    );
    auth.mint(&claims).context(
        "tokens are verified with a public key here; pglive token signs only with --jwt-secret",
    )
}

/// Raises the open-file limit to its hard maximum and keeps the WebSocket
/// bound within it, so that a server full of WebSockets still has
/// descriptors for HTTP (health checks included) and the database.
fn fit_descriptors(config: &mut pglive_server::config::Config) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let mut raised = limit;
        raised.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %err, "cannot raise the open-file limit");
        }
    }
    let Some(files) = getrlimit(Resource::Nofile).current else {
        return;
    };
    let room = files
        .saturating_sub(config.descriptors_besides_websockets())
        .max(1);
    if config.max_connections as u64 > room {
        tracing::warn!(
            open_files = files,
            max_connections = room,
            "the open-file limit leaves room for fewer WebSockets than --max-connections; lowering it"
        );
        config.max_connections = usize::try_from(room).unwrap_or(usize::MAX);
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => tracing::warn!("SIGINT received"),
            _ = term.recv() => tracing::warn!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
