//! The servers under test (pglive, the Node.js peer and the floor): start,
//! stop, and their CPU and memory from /proc; pglive's /metrics.

use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Pids of servers started by this process, killed by the watchdog if the
/// process has to give up.
pub static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn remember(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
}

fn forget(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|p| *p != pid);
    }
}

/// Kills every remembered child (SIGKILL).
pub fn kill_all_children() {
    if let Ok(c) = CHILDREN.lock() {
        for &pid in c.iter() {
            signal(pid, rustix::process::Signal::KILL);
        }
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

pub struct ServerProc {
    pub child: Child,
    pub pid: u32,
    pub port: u16,
}

/// Starts `pglive --database-url URL --addr 127.0.0.1:0 [EXTRA…]` and waits
/// for its `pglive listening on http://127.0.0.1:PORT` line.
pub async fn start_pglive(
    bin: &Path,
    db_url: &str,
    log: &Path,
    extra: &[&str],
) -> Result<ServerProc> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(["--database-url", db_url, "--addr", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file.try_clone().context("log file")?))
        .kill_on_drop(true);
    // The default cap (10,000 WebSockets) equals S5's clients: the typed
    // check's extra client would be refused. The environment (not a flag)
    // so that builds from before the cap still start.
    if std::env::var_os("PGLIVE_MAX_CONNECTIONS").is_none() {
        cmd.env("PGLIVE_MAX_CONNECTIONS", "100000");
    }
    if std::env::var_os("PGLIVE_LOG").is_none() && std::env::var_os("RUST_LOG").is_none() {
        // Per-connection info logs would cost CPU at 10,000 clients.
        cmd.env("PGLIVE_LOG", "warn");
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("pglive exited at once")?;
    remember(pid);
    let stdout = child.stdout.take().context("pglive stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
    let line = match first {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) => {
            let status = child.wait().await.ok();
            anyhow::bail!(
                "pglive exited before listening ({status:?}); its log: {}\n{}",
                log.display(),
                tail_of(log, 20)
            );
        }
        Ok(Err(e)) => return Err(e).context("reading pglive stdout"),
        Err(_) => anyhow::bail!(
            "pglive printed no 'listening' line within 60 s; its log: {}",
            log.display()
        ),
    };
    let port = parse_listen_line(&line)
        .with_context(|| format!("unexpected first line from pglive: {line:?}"))?;
    // Keep draining stdout into the log.
    let mut log_out = tokio::fs::File::from_std(log_file);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log_out
                .write_all(format!("[stdout] {line}\n").as_bytes())
                .await;
        }
    });
    Ok(ServerProc { child, pid, port })
}

/// `pglive listening on http://127.0.0.1:PORT` → PORT.
pub fn parse_listen_line(line: &str) -> Option<u16> {
    let rest = line.trim().strip_prefix("pglive listening on ")?;
    rest.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

/// A free TCP port on 127.0.0.1 (for servers that take a fixed PORT).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Starts the peer (`node server.js` in `dir`) on a free port and waits until
/// it accepts connections.
pub async fn start_peer(node: &str, dir: &Path, db_url: &str, log: &Path) -> Result<ServerProc> {
    let port = free_port()?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(node)
        .arg("server.js")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .env("DATABASE_URL", db_url)
        .env("QUIET", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().context("log file")?))
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {node} server.js in {}", dir.display()))?;
    wait_listening(child, port, "the peer", log).await
}

/// Starts the floor (env `PORT`, `DATABASE_URL`) on a free port and waits
/// until it accepts connections. It LISTENs before it binds its port, so
/// once it accepts, no write can be missed.
pub async fn start_floor(bin: &Path, db_url: &str, log: &Path) -> Result<ServerProc> {
    let port = free_port()?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(bin)
        .env("PORT", port.to_string())
        .env("DATABASE_URL", db_url)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().context("log file")?))
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    wait_listening(child, port, "the floor", log).await
}

async fn wait_listening(mut child: Child, port: u16, what: &str, log: &Path) -> Result<ServerProc> {
    let pid = child
        .id()
        .with_context(|| format!("{what} exited at once"))?;
    remember(pid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "{what} exited before listening ({status}); its log: {}\n{}",
                log.display(),
                tail_of(log, 20)
            );
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(ServerProc { child, pid, port })
}

/// Whether this pglive binary has `--capture` (WAL capture, issue 10): its
/// `--help` mentions it.
pub async fn pglive_has_capture(bin: &Path) -> Result<bool> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(bin)
            .arg("--help")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("pglive --help timed out")?
    .with_context(|| format!("running {} --help", bin.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text.contains("--capture"))
}

impl ServerProc {
    /// SIGTERM, then SIGKILL after `grace`. Returns how it ended.
    pub async fn stop(mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            forget(self.pid);
            return format!("had already exited: {status}");
        }
        signal(self.pid, rustix::process::Signal::TERM);
        let res = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => format!("stopped by SIGTERM: {status}"),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                format!("did not exit within {grace:?} of SIGTERM; killed")
            }
        };
        forget(self.pid);
        res
    }

    /// `Some(status)` if it has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }
}

/// The last `n` lines of a file (for error messages).
pub fn tail_of(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// CPU time (user + system) of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    let hz = rustix::param::clock_ticks_per_second();
    Some(ticks as f64 / hz.max(1) as f64)
}

/// utime + stime (fields 14 and 15) from a /proc/<pid>/stat line.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces; fields after it start
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy CPU seconds of the whole machine (all CPUs, everything but idle and
/// iowait) from /proc/stat.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = parse_machine_busy(&stat)?;
    Some(ticks as f64 / rustix::param::clock_ticks_per_second().max(1) as f64)
}

pub fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user)
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
}

/// A `kB` field of /proc/<pid>/status (e.g. `VmHWM`, `VmRSS`), in MiB.
pub fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kb(&status, field).map(|kb| kb as f64 / 1024.0)
}

pub fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Fetches `/metrics` from pglive and returns the sums of the given counters
/// (over all label sets); `None` when unavailable.
pub async fn metrics(port: u16, names: &[&str]) -> Option<Vec<Option<f64>>> {
    let body = tokio::time::timeout(Duration::from_secs(3), async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    })
    .await
    .ok()??;
    let (head, body) = body.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1).is_none_or(|c| c != "200") {
        return None;
    }
    Some(names.iter().map(|n| metric_sum(body, n)).collect())
}

/// Sum of every sample of metric `name` in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = if rest.starts_with('{') {
            rest.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            sum = Some(sum.unwrap_or(0.0) + v);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_line() {
        assert_eq!(
            parse_listen_line("pglive listening on http://127.0.0.1:41234"),
            Some(41234)
        );
        assert_eq!(parse_listen_line("something else"), None);
    }

    #[test]
    fn proc_stat() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000 50";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(
            parse_status_kb("Name:\tx\nVmHWM:\t  15360 kB\nVmRSS:\t 100 kB\n", "VmHWM"),
            Some(15360)
        );
        assert_eq!(parse_status_kb("VmRSS:\t 100 kB\n", "VmHWM"), None);
    }

    #[test]
    fn machine_busy() {
        let stat = "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_machine_busy(stat), Some(161));
    }

    #[test]
    fn metrics_sum() {
        let text = "# HELP pglive_refreshes_total x\npglive_refreshes_total{table=\"items\"} 3\npglive_refreshes_total{table=\"tasks\"} 4\npglive_refreshes_total_other 9\npglive_rows_read_total 10\n";
        assert_eq!(metric_sum(text, "pglive_refreshes_total"), Some(7.0));
        assert_eq!(metric_sum(text, "pglive_rows_read_total"), Some(10.0));
        assert_eq!(metric_sum(text, "missing"), None);
    }
}
