//! The `pglive` binary as a child process, for tests that kill it (SIGKILL:
//! no shutdown, no final confirmation to the replication slot) or run its
//! subcommands.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::TIMEOUT;
use crate::server::TestServer;

/// A running `pglive` process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// HTTP helpers (`get`, `metric`, `ws_url`) on the process's address.
    pub server: TestServer,
    child: Child,
}

impl ServerProcess {
    /// Starts `bin` on 127.0.0.1:0 with `args` (after `--database-url`) and
    /// waits until `/readyz` answers 200.
    pub async fn start(bin: &Path, database_url: &str, args: &[&str]) -> ServerProcess {
        let mut child = Command::new(bin)
            .arg("--database-url")
            .arg(database_url)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env(
                "PGLIVE_LOG",
                std::env::var("PGLIVE_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(TIMEOUT, lines.next_line())
            .await
            .expect("pglive prints its address")
            .unwrap()
            .expect("pglive prints its address before exiting");
        let addr = line
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        // Keep reading stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut server = TestServer::external(addr);
        server.wait_ready().await;
        ServerProcess { server, child }
    }

    /// SIGKILL, and wait until it is gone.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(TIMEOUT, self.child.wait()).await;
    }

    /// SIGTERM (a graceful stop), and wait until it exits.
    pub async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(TIMEOUT, self.child.wait()).await;
    }
}

/// Runs `bin` with `args` (a subcommand) to completion; returns its exit
/// success and its stdout and stderr.
pub async fn run_command(bin: &Path, args: &[&str]) -> (bool, String, String) {
    run_command_with_env(bin, args, &[]).await
}

/// [`run_command`] with environment variables set (`DATABASE_URL`, say),
/// for tests of what the binary does with its environment.
pub async fn run_command_with_env(
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let out = tokio::time::timeout(
        TIMEOUT,
        Command::new(bin)
            .args(args)
            .env("PGLIVE_LOG", "warn")
            .envs(env.iter().copied())
            .output(),
    )
    .await
    .expect("the command finishes")
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A PostgreSQL cluster of the test's own (from `dev/pg.sh`), for tests
/// that restart or reconfigure PostgreSQL without disturbing the tests
/// that share the main test cluster. Stopped when dropped.
#[derive(Debug)]
pub struct PrivateCluster {
    dir: PathBuf,
    port: u16,
    /// Its admin URL (database `postgres`).
    pub admin: String,
}

fn pg_sh(args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(crate::repo_root().join("dev/pg.sh"))
        .args(args)
        .output()
        .expect("run dev/pg.sh");
    assert!(
        out.status.success(),
        "dev/pg.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl PrivateCluster {
    /// Starts (initializing it the first time) the cluster `name` under
    /// `target/`, on a free port.
    pub async fn start(name: &str) -> PrivateCluster {
        let dir = crate::repo_root().join(format!("target/pglive-private-{name}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.to_string_lossy().into_owned();
        let admin = tokio::task::spawn_blocking(move || pg_sh(&["start", &d, &port.to_string()]))
            .await
            .unwrap();
        PrivateCluster { dir, port, admin }
    }

    /// A new database `name` with every migration applied; returns its URL.
    pub async fn migrated_database(&self, name: &str) -> String {
        use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
        let mut conn = AsyncPgConnection::establish(&self.admin).await.unwrap();
        crate::drop_database(&mut conn, name).await;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = crate::with_db(&self.admin, name);
        pglive_server::db::migrate(&url).await.unwrap();
        url
    }

    /// Stops PostgreSQL (fast: connections are cut) and starts it again.
    pub async fn restart(&self, down_for: Duration) {
        self.stop().await;
        tokio::time::sleep(down_for).await;
        let d = self.dir.to_string_lossy().into_owned();
        let port = self.port;
        tokio::task::spawn_blocking(move || pg_sh(&["start", &d, &port.to_string()]))
            .await
            .unwrap();
    }

    pub async fn stop(&self) {
        let d = self.dir.to_string_lossy().into_owned();
        tokio::task::spawn_blocking(move || pg_sh(&["stop", &d]))
            .await
            .unwrap();
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(crate::repo_root().join("dev/pg.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
