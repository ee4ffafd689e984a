//! What the `pglive` binary says about a database URL that cannot work: an
//! unparseable one stops it at start, naming the variable; an unreachable
//! one keeps it retrying with warnings that name the address and the cause.
//! And the "listening" line harnesses wait for is printed only by a server
//! that passed its start-up checks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::path::Path;
use std::process::Stdio;

use pglive_testkit::{TIMEOUT, run_command_with_env};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn pglive() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pglive"))
}

#[tokio::test]
async fn an_unparseable_database_url_stops_the_server_naming_the_variable() {
    let (ok, out, err) = run_command_with_env(
        pglive(),
        &["--addr", "127.0.0.1:0"],
        &[("DATABASE_URL", "not-a-url")],
    )
    .await;
    assert!(
        !ok,
        "pglive started with DATABASE_URL=not-a-url; stderr: {err}"
    );
    assert!(
        err.contains("DATABASE_URL"),
        "stderr does not name DATABASE_URL: {err}"
    );
    assert!(
        err.contains("not a PostgreSQL connection string"),
        "stderr does not say what is wrong: {err}"
    );
    assert!(
        !out.contains("listening"),
        "a refused server said it listens: {out}"
    );
}

#[tokio::test]
async fn migrate_refuses_an_unparseable_url_naming_the_variable() {
    let (ok, _, err) =
        run_command_with_env(pglive(), &["migrate"], &[("DATABASE_URL", "not-a-url")]).await;
    assert!(!ok, "pglive migrate accepted DATABASE_URL=not-a-url");
    assert!(
        err.contains("DATABASE_URL"),
        "stderr does not name DATABASE_URL: {err}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_logged_with_its_address_and_cause() {
    // Nothing listens on port 1 of the loopback interface: connecting is
    // refused at once, and the server keeps retrying (it serves meanwhile,
    // reporting not ready).
    let mut child = Command::new(pglive())
        .args(["--addr", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://x@127.0.0.1:1/db")
        .env("PGLIVE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let hit =
                line.contains("WARN") && line.contains("127.0.0.1:1") && line.contains("refused");
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let _ = child.start_kill();
    assert!(
        found,
        "no WARN naming 127.0.0.1:1 and the refusal; stderr:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes in logs written to a pipe:\n{}",
        seen.join("\n")
    );
}

#[tokio::test]
async fn a_server_that_refuses_to_start_never_says_it_listens() {
    // Authentication off on a non-loopback address is refused at start,
    // after the listener is bound: the "listening" line must not come first.
    let (ok, out, err) = run_command_with_env(
        pglive(),
        &["--addr", "0.0.0.0:0"],
        &[("DATABASE_URL", "postgres://x@127.0.0.1:1/db")],
    )
    .await;
    assert!(!ok, "pglive served without authentication on 0.0.0.0");
    assert!(err.contains("--no-auth"), "stderr does not say why: {err}");
    assert!(
        !out.contains("listening"),
        "a refused server said it listens: {out}"
    );
}

/// The first WARN line pglive writes when run in a pseudo-terminal (by
/// util-linux `script`), with `no_color` as NO_COLOR; None where `script`
/// is missing.
async fn first_warn_on_a_terminal(no_color: &str) -> Option<String> {
    let command = format!("exec {} --addr 127.0.0.1:0", pglive().display());
    let mut child = match Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DATABASE_URL", "postgres://x@127.0.0.1:1/db")
        .env("PGLIVE_LOG", "warn")
        .env("NO_COLOR", no_color)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => panic!("spawn script: {err}"),
    };
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("WARN") {
                return line;
            }
        }
        panic!("pglive wrote no WARN line on the terminal");
    })
    .await
    .expect("a WARN line on the terminal");
    let _ = child.start_kill();
    Some(line)
}

#[tokio::test]
async fn logs_are_coloured_on_a_terminal_unless_no_color_is_set() {
    let Some(coloured) = first_warn_on_a_terminal("").await else {
        eprintln!("skipped: no `script` to run pglive in a pseudo-terminal");
        return;
    };
    assert!(
        coloured.contains('\u{1b}'),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = first_warn_on_a_terminal("1").await.unwrap();
    assert!(
        !plain.contains('\u{1b}'),
        "colour with NO_COLOR=1: {plain:?}"
    );
}
