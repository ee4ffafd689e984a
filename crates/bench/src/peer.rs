//! The article's Node.js server (the peer, `../shared/peers/seed-node`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// Copies the peer into target/bench/seed-node and installs its
/// node_modules (npm ci) when missing or stale.
pub async fn prepare(
    src: &Path,
    out_dir: &Path,
    node: &str,
    npm_timeout: Duration,
) -> Result<PathBuf, String> {
    let inner = async {
        anyhow::ensure!(
            src.join("server.js").exists(),
            "the peer is not at {} (pass --peer-dir)",
            src.display()
        );
        let node_ok = tokio::process::Command::new(node)
            .arg("--version")
            .output()
            .await
            .is_ok_and(|o| o.status.success());
        anyhow::ensure!(
            node_ok,
            "{node} is not runnable (Node.js 18+ is needed for the peer)"
        );
        let dst = out_dir.join("seed-node");
        std::fs::create_dir_all(&dst)?;
        let mut changed = false;
        for f in [
            "package.json",
            "package-lock.json",
            "server.js",
            "schema.sql",
        ] {
            let from = src.join(f);
            if !from.exists() {
                continue;
            }
            let new =
                std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            let to = dst.join(f);
            if std::fs::read(&to).ok().as_deref() != Some(new.as_slice()) {
                std::fs::write(&to, &new).with_context(|| format!("writing {}", to.display()))?;
                changed = true;
            }
        }
        if changed || !dst.join("node_modules").exists() {
            eprintln!("pglive-bench: npm ci in {}", dst.display());
            let out = tokio::time::timeout(
                npm_timeout,
                tokio::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dst)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .context("npm ci took too long")?
            .context("running npm ci")?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(dst.join("node_modules"));
                anyhow::bail!(
                    "npm ci failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(dst)
    };
    inner.await.map_err(|e: anyhow::Error| format!("{e:#}"))
}
