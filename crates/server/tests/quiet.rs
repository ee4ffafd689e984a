//! Clients cannot make the server log warnings or errors at will: every
//! client-caused failure logs at debug or info. This test binary captures
//! every WARN and ERROR event the server emits while a client misbehaves in
//! all the ways the hostile-client probe tried.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use futures_util::SinkExt;
use pglive_testkit::{Client, TestDb, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Every WARN and ERROR event, as text.
fn loud() -> &'static Mutex<Vec<String>> {
    static LOUD: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LOUD.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() <= Level::WARN {
            loud().lock().unwrap().push(format!("{event:?}"));
        }
    }
}

async fn raw(server: &TestServer, bytes: &[u8]) {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut sink)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mistakes_never_log_warnings_or_errors() {
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture));
    let db = TestDb::new().await;
    let mut config = pglive_server::config::Config::new(db.url.clone());
    config.header_read_timeout_secs = 1;
    config.messages_per_second = 5;
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "app").unwrap();
    config.web_dir = Some(web.path().to_path_buf());
    let server = TestServer::with_config(config).await;
    loud().lock().unwrap().clear();

    // HTTP: incomplete requests, garbage, traversal, dotfiles, bad REST.
    raw(&server, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    raw(
        &server,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage",
    )
    .await;
    raw(&server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    raw(&server, b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{").await;
    for path in [
        "/../../etc/passwd",
        "/.env",
        "/%2e%2e/x",
        "/assets/..%2f..%2fetc",
        "/%ff",
    ] {
        server.get(path).await;
    }
    server
        .request("POST", "/api/items", Some("{not json"))
        .await;
    server
        .request("POST", "/api/items", Some(r#"{"name":"x","extra":1}"#))
        .await;
    server.request("POST", "/api/nope", Some("{}")).await;
    server
        .request("PATCH", "/api/tasks/not-a-number", Some(r#"{"title":"t"}"#))
        .await;
    server
        .request(
            "POST",
            "/api/tasks",
            Some(r#"{"title":"t","due_date":"-4714-11-23"}"#),
        )
        .await;
    server
        .raw_request(
            "POST",
            "/api/items",
            &[
                ("origin", "https://evil.example"),
                ("content-type", "application/json"),
            ],
            Some("{}"),
        )
        .await;

    // WebSocket: bad frames, invalid UTF-8, a flood, an oversized frame.
    let mut c = Client::connect(&server).await;
    c.send_raw(Message::text("{not json")).await;
    c.subscribe("a", json!({"table":"nope"})).await;
    c.subscribe(
        "b",
        json!({"table":"tasks","filter":{"due_date_lt":"-10000-01-01"}}),
    )
    .await;
    c.drain(Duration::from_millis(300)).await;
    let mut c = Client::connect(&server).await;
    let _ =
        c.ws.send(Message::Frame(Frame::message(
            vec![0xc3, 0x28],
            OpCode::Data(Data::Text),
            true,
        )))
        .await;
    c.drain(Duration::from_secs(2)).await;
    let mut c = Client::connect(&server).await;
    for _ in 0..300 {
        if c.ws.send(Message::Ping(vec![0u8].into())).await.is_err() {
            break;
        }
    }
    c.drain(Duration::from_secs(2)).await;
    let mut c = Client::connect(&server).await;
    let _ = c.ws.send(Message::text("x".repeat(2 * 1024 * 1024))).await;
    c.drain(Duration::from_secs(2)).await;
    // And a client that vanishes mid-stream.
    let mut c = Client::connect(&server).await;
    c.subscribe("all", json!({"table":"items"})).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let loud = loud().lock().unwrap().clone();
    assert!(
        loud.is_empty(),
        "client mistakes logged at WARN or ERROR:\n{}",
        loud.join("\n")
    );
    server.stop().await;
}
