use anyhow::Context;
use clap::Parser;
use pglive_server::config::{Cli, Command, LogFormat, SlotAction};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.config;
    let filter = EnvFilter::try_new(&config.log).context("invalid --log filter")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }

    if let Some(Command::Migrate) = cli.command {
        let url = config
            .database_url
            .as_deref()
            .context("no database URL: set DATABASE_URL or pass --database-url")?;
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

    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.addr))?;
    // Harnesses started with port 0 read the real address from this line.
    println!("pglive listening on http://{}", listener.local_addr()?);
    pglive_server::run(config, listener, shutdown_signal()).await?;
    Ok(())
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
