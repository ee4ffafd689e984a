//! The fan-out floor (`../shared/peers/floor-rs`): one LISTEN, each payload
//! written to every socket, nothing else. It is built where it lives, with
//! its own lock file, into target/bench/floor-rs, so that nothing is copied
//! into this repository and nothing is written beside its sources.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A built floor, ready to run.
#[derive(Debug, Clone)]
pub struct Floor {
    pub bin: PathBuf,
    /// Its prep.sql: `items (id, name)` and the row trigger that NOTIFYs the
    /// new name (or `d<id>`).
    pub prep_sql: String,
}

/// Why the floor cannot run. `Missing` is expected in a fresh clone without
/// `../shared` and only skips the floor; the others are real failures.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("the floor's sources are not at {0} (pass --floor-dir); skipping the floor")]
    Missing(PathBuf),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running {cargo} build: {source}")]
    Spawn {
        cargo: String,
        source: std::io::Error,
    },
    #[error("building the floor took longer than {0:?}")]
    Timeout(Duration),
    #[error("building the floor failed ({status}):\n{stderr}")]
    Build { status: String, stderr: String },
    #[error("the build succeeded but {0} is missing")]
    NoBinary(PathBuf),
}

impl FloorError {
    pub fn is_missing(&self) -> bool {
        matches!(self, FloorError::Missing(_))
    }
}

/// Builds the floor from `src` with `cargo build --release --locked
/// --target-dir <out_dir>/floor-rs` (a no-op when it is up to date).
pub async fn prepare(src: &Path, out_dir: &Path, timeout: Duration) -> Result<Floor, FloorError> {
    let manifest = src.join("Cargo.toml");
    let prep = src.join("prep.sql");
    if !manifest.exists() || !prep.exists() || !src.join("src/main.rs").exists() {
        return Err(FloorError::Missing(src.to_path_buf()));
    }
    let prep_sql = std::fs::read_to_string(&prep).map_err(|source| FloorError::Read {
        path: prep.clone(),
        source,
    })?;
    let target_dir = out_dir.join("floor-rs");
    // Under `cargo run`, CARGO names the cargo that built us: use the same.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!(
        "pglive-bench: building the floor from {} into {}",
        src.display(),
        target_dir.display()
    );
    let build = tokio::process::Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        // The sources may be read-only; run from a directory of ours.
        .current_dir(out_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, build)
        .await
        .map_err(|_| FloorError::Timeout(timeout))?
        .map_err(|source| FloorError::Spawn {
            cargo: cargo.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(FloorError::Build {
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    let bin = target_dir.join("release/floor-rs");
    if !bin.exists() {
        return Err(FloorError::NoBinary(bin));
    }
    Ok(Floor { bin, prep_sql })
}
