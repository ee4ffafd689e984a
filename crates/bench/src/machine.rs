//! The machine and the checkout the bench runs on: its description for the
//! results, its open-file limit, the repository's root and revision.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::server;

/// The machine the run ran on (in the JSON results).
#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub mem_total_mib: Option<u64>,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
    pub postgres: Option<String>,
    pub node: Option<String>,
}

/// Describes this machine, with the versions of PostgreSQL and node.
pub fn machine(postgres: Option<String>, node: Option<String>) -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_mib: server::parse_status_kb(&meminfo, "MemTotal").map(|kb| kb / 1024),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string()),
        postgres,
        node,
    }
}

/// Raises RLIMIT_NOFILE to the hard limit (children inherit it) and warns
/// when that is too low for `need` descriptors.
pub fn raise_nofile(need: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum;
    let new = Rlimit {
        current: hard,
        maximum: hard,
    };
    if let Err(e) = setrlimit(Resource::Nofile, new) {
        eprintln!("pglive-bench: warning: could not raise RLIMIT_NOFILE: {e}");
    }
    if let Some(h) = hard
        && h < need
    {
        eprintln!(
            "pglive-bench: warning: the hard open-file limit is {h}, but this run needs about {need} \
                 (clients + servers' sockets); raise it (e.g. `ulimit -Hn {need}` as root, or \
                 /etc/security/limits.conf) or use fewer --clients"
        );
    }
}

/// The repository the bench was built in (else the current directory).
pub fn repo_root() -> PathBuf {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if compiled.join("Cargo.toml").exists() {
        compiled.canonicalize().unwrap_or(compiled)
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
    }
}

/// `git rev-parse HEAD` of the repository, `+dirty` with local changes
/// under crates/ or migrations/.
pub fn git_revision(root: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = run(&["rev-parse", "HEAD"])?;
    let dirty = run(&["status", "--porcelain", "--", "crates", "migrations"])
        .is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}+dirty") } else { head })
}
