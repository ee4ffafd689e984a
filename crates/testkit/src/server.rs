//! The real server, in this process, on a free port.

use std::net::SocketAddr;
use std::time::Duration;

use pglive_server::config::{CaptureMode, Config};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::TIMEOUT;
use crate::db::TestDb;

/// A pglive server running in this process on 127.0.0.1:0.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The server's configuration for `db` with capture `mode` (every other
/// setting at its default).
pub fn config_in(db: &TestDb, mode: CaptureMode) -> Config {
    let mut config = Config::new(db.url.clone());
    config.capture = mode;
    // Tests that count groups expect a group to end with its last member;
    // the tests of lingering (tests/resume.rs) turn it on.
    config.group_linger_secs = 0;
    config
}

/// Runs the server with `config` on `addr` until it refuses to start (its
/// error's text) or serves (`None`, stopped after 10 s): for the tests of
/// start-up checks.
pub async fn start_error(config: Config, addr: &str) -> Option<String> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = pglive_server::run(config, listener, async {
        let _ = stopped.await;
    });
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Err(err)) => Some(err.to_string()),
        Ok(Ok(())) => None,
        Err(_) => {
            drop(stop);
            None
        }
    }
}

/// A token signed with the HS256 `secret`, as a server configured with
/// `--jwt-secret secret` verifies it (pglive's own minting, as
/// `pglive token` uses it).
pub fn mint_hs256(secret: &str, claims: &serde_json::Value) -> String {
    let mut config = Config::new("postgres://unused");
    config.jwt_secret = Some(pglive_server::Secret::new(secret));
    pglive_server::Authenticator::new(&config.auth_config())
        .expect("a valid secret")
        .expect("authentication configured")
        .mint(claims.as_object().expect("claims are an object"))
        .expect("an HMAC secret mints")
}

impl TestServer {
    pub async fn start(db: &TestDb) -> TestServer {
        TestServer::with_config(config_in(db, CaptureMode::Notify)).await
    }

    /// The server on `db` with capture `mode`.
    pub async fn start_in(db: &TestDb, mode: CaptureMode) -> TestServer {
        TestServer::with_config(config_in(db, mode)).await
    }

    /// A handle on a server that runs elsewhere (another process): HTTP
    /// helpers only; `stop` does nothing.
    pub fn external(addr: SocketAddr) -> TestServer {
        TestServer {
            addr,
            stop: None,
            task: None,
        }
    }

    pub async fn with_config(mut config: Config) -> TestServer {
        config.addr = "127.0.0.1:0".parse().unwrap();
        let listener = tokio::net::TcpListener::bind(config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            pglive_server::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server run");
        });
        let mut server = TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    pub async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            // A server that refused to start: show why.
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                if let Some(task) = self.task.take() {
                    task.await.unwrap();
                }
                panic!("the server stopped before it was ready");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A minimal HTTP/1.1 GET; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, None).await
    }

    /// A minimal HTTP/1.1 request with a JSON body; returns status and body.
    pub async fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        self.raw_request(method, path, &[("content-type", "application/json")], body)
            .await
    }

    /// A minimal HTTP/1.1 request with the given headers; returns status and body.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = TcpStream::connect(self.addr).await else {
            return (0, String::new());
        };
        let body = body.unwrap_or("");
        let mut req = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            req.push_str(&format!("host: {}\r\n", self.addr));
        }
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        if s.write_all(req.as_bytes()).await.is_err() {
            return (0, String::new());
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, dechunk(&body))
    }

    /// A metric's current value from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    /// Waits until a metric has `want`.
    pub async fn wait_metric(&self, name: &str, want: u64) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let now = self.metric(name).await;
            if now == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed {now}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a counter has reached at least `min`, and returns it:
    /// for counts that other work may push past `min` meanwhile.
    pub async fn wait_metric_at_least(&self, name: &str, min: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let now = self.metric(name).await;
            if now >= min {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed {now}, wanted at least {min}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Shuts down like SIGTERM does and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("server stops")
                .unwrap();
        }
    }
}

fn dechunk(body: &str) -> String {
    // Responses may be chunked; good enough for small test bodies.
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, tail)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if n == 0 {
            return out;
        }
        if tail.len() < n {
            return body.to_owned();
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
}
