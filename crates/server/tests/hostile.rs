//! Hostile clients cannot exhaust, stall or confuse the server: one test per
//! finding of the probe that filed issue 13, each against a real server and a
//! real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use futures_util::SinkExt;
use pglive_server::config::Config;
use pglive_testkit::{Client, TestDb, TestServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Reads whatever the server sends until it closes (or `wait` passes).
async fn read_all(s: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (buf, true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (buf, false),
        }
    }
}

/// Finding 1: a query refused as too large stayed unanswered for everyone
/// once a subscriber joined while its group was ending. Churn it from many
/// connections, then a fresh client (with the query written differently but
/// equivalently) must get its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_query_is_answered_again_after_churn() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'e' || g FROM generate_series(1, 10) g")
        .await;
    let mut config = Config::new(db.url.clone());
    config.max_rows = 5;
    config.messages_per_second = 1000;
    let server = TestServer::with_config(config).await;
    let mut churners = Vec::new();
    for _ in 0..20 {
        churners.push(Client::connect(&server).await);
    }
    for round in 0..30 {
        for c in &mut churners {
            c.subscribe("x", json!({"table":"items","filter":{"name_contains":"e"}}))
                .await;
            if round % 2 == 0 {
                c.unsubscribe("x").await;
            }
        }
    }
    let mut fresh = Client::connect(&server).await;
    fresh
        .subscribe(
            "y",
            json!({"table":"items","order":{"by":"id","dir":"asc"},"filter":{"name_contains":"e"}}),
        )
        .await;
    let e = fresh.error("result_too_large").await;
    assert_eq!(e.id.unwrap().0, "y");
    // Once the table shrinks, the same query is served.
    db.exec("DELETE FROM items WHERE id > 3").await;
    fresh
        .subscribe("y", json!({"table":"items","filter":{"name_contains":"e"}}))
        .await;
    assert!(fresh.until(|c| c.len("y") == 3).await);
    server.stop().await;
}

/// Finding 2: no global bound on groups or the rows they hold, and every
/// insert re-ran every limited query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_rows_held_are_bounded_and_limited_queries_update_in_memory() {
    let db = TestDb::new().await;
    db.exec("INSERT INTO items (name) SELECT 'n' || g FROM generate_series(1, 2000) g")
        .await;
    let mut config = Config::new(db.url.clone());
    config.max_groups = 60;
    config.group_linger_secs = 0;
    config.max_rows_held = 50_000;
    config.messages_per_second = 1000;
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;
    // Fifty distinct limited queries: within the bounds.
    for i in 0..50 {
        c.subscribe(
            &format!("l{i}"),
            json!({"table":"items","limit":100 - i,"order":{"by":"id","dir":"desc"}}),
        )
        .await;
    }
    assert!(c.until(|c| (0..50).all(|i| c.has(&format!("l{i}")))).await);
    // One insert: the limited queries update from the changed row in
    // memory; one keyed read in total, not fifty queries.
    let before = server.metric("pglive_refreshes_total").await;
    db.exec("INSERT INTO items (name) VALUES ('newest')").await;
    assert!(
        c.until(|c| (0..50).all(|i| c.rows(&format!("l{i}"))[0]["name"] == "newest"))
            .await
    );
    let reads = server.metric("pglive_refreshes_total").await - before;
    assert_eq!(reads, 1, "one read for fifty limited groups");

    // Past the group bound: server_busy, and nothing grows.
    let mut d = Client::connect(&server).await;
    for i in 0..20 {
        d.subscribe(&format!("g{i}"), json!({"table":"items","limit":1000 + i}))
            .await;
    }
    let busy = d.error("server_busy").await;
    assert!(busy.id.is_some());
    assert!(server.metric("pglive_groups").await <= 60);
    // Everything held is released when the clients leave.
    drop((c, d));
    server.wait_metric("pglive_groups", 0).await;
    server.wait_metric("pglive_rows_held", 0).await;
    server.stop().await;

    // Past the bound on rows all groups hold: a new query is refused.
    let mut config = Config::new(db.url.clone());
    config.max_rows_held = 3_000;
    let server = TestServer::with_config(config).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("a", json!({"table":"items","limit":2000}))
        .await;
    assert!(c.until(|c| c.len("a") == 2000).await);
    c.subscribe("b", json!({"table":"items","limit":1999}))
        .await;
    let e = c.error("server_busy").await;
    assert_eq!(e.id.unwrap().0, "b");
    assert!(server.metric("pglive_rows_held").await <= 3_000);
    server.stop().await;
}

/// Finding 3: requests that never finish their headers, silent connections
/// and idle keep-alive connections were held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.header_read_timeout_secs = 1;
    let server = TestServer::with_config(config).await;

    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for (name, s) in [
        ("partial headers", &mut partial),
        ("silent", &mut silent),
        ("idle keep-alive", &mut idle),
    ] {
        let (_, closed) = read_all(s, Duration::from_secs(10)).await;
        assert!(closed, "{name}: still open");
    }
    // Oversized headers are refused, not buffered.
    let mut big = TcpStream::connect(server.addr).await.unwrap();
    let header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(300 * 1024)
    );
    let _ = big.write_all(header.as_bytes()).await;
    let (answer, closed) = read_all(&mut big, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        closed && (answer.is_empty() || answer.starts_with("HTTP/1.1 431")),
        "{answer}"
    );
    server.stop().await;
}

/// Finding 4: no connection cap; descriptors ran out and health checks failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_health_still_answers() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.max_connections = 3;
    config.max_http_connections = 4;
    let server = TestServer::with_config(config).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Client::connect(&server).await);
    }
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 503)
        }
        other => panic!("a fourth WebSocket was not refused: {other:?}"),
    }
    // HTTP connections that never send anything fill the HTTP bound ...
    let mut squatters = Vec::new();
    for _ in 0..6 {
        squatters.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ... and health still answers, while the rest is told to come back.
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/metrics").await.0, 503);
    drop(squatters);
    drop(open);
    // Once the squatters are gone, everything is served again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.metric("pglive_connections_refused_total").await >= 2);
    server.stop().await;
}

/// Finding 5: SIGTERM waited for a slow HTTP client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_slow_client() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.shutdown_deadline_secs = 1;
    let server = TestServer::with_config(config).await;
    // A request whose body never finishes.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(
        b"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // `stop` fails the test if the server is not gone within its timeout.
    server.stop().await;
}

/// Finding 6: a value PostgreSQL cannot take reached SQL and was retried
/// forever; the contract now refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_postgres_cannot_store_are_refused_by_the_contract() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    c.subscribe(
        "d",
        json!({"table":"tasks","filter":{"due_date_lt":"-10000-01-01"}}),
    )
    .await;
    let e = c.error("invalid_query").await;
    assert!(e.message.contains("4714"), "{}", e.message);
    assert_eq!(server.metric("pglive_refresh_errors_total").await, 0);
    server.stop().await;
}

/// Finding 8: REST status codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_answers_with_the_right_status() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(16 * 1024));
    let (status, body) = server.request("POST", "/api/items", Some(&big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "too_large"
    );

    // A chunked body (no Content-Length) is read.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let body = r#"{"name":"chunked"}"#;
    let req = format!(
        "POST /api/items HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (answer, _) = read_all(&mut s, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let (status, body) = server
        .request(
            "POST",
            "/api/tasks",
            Some(r#"{"title":"t","due_date":"-4714-11-23"}"#),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "due_date"
    );
    let (status, _) = server
        .raw_request(
            "POST",
            "/api/items",
            &[("content-type", "text/plain")],
            Some(r#"{"name":"x"}"#),
        )
        .await;
    assert_eq!(status, 415);
    let (status, _) = server.request("GET", "/api/items", None).await;
    assert_eq!(status, 405);
    // The published schema says object; so does the server.
    let (status, _) = server.request("POST", "/api/items", Some(r#"["x"]"#)).await;
    assert_eq!(status, 400);
    server.stop().await;
}

/// Finding 9: pings and binary frames were free; a flood is now counted
/// and closed with 4029.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_binary_floods_are_closed() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.messages_per_second = 5;
    let server = TestServer::with_config(config).await;
    for flood in [Message::Ping(vec![1u8].into()), Message::binary(vec![1u8])] {
        let mut c = Client::connect(&server).await;
        for _ in 0..400 {
            if c.ws.send(flood.clone()).await.is_err() {
                break;
            }
        }
        c.drain(Duration::from_secs(3)).await;
        assert_eq!(
            c.close_code,
            Some(pglive_server::CLOSE_FLOODING),
            "{flood:?}"
        );
    }
    server.stop().await;
}

/// Finding 10: any origin could use the WebSocket and the API, form posts
/// wrote rows, and the Host header was never checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_sites_and_other_hosts_are_refused() {
    let db = TestDb::new().await;
    let mut config = Config::new(db.url.clone());
    config.allowed_origins = vec!["https://app.example".into()];
    let server = TestServer::with_config(config).await;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 403)
        }
        other => panic!("evil origin got a WebSocket: {other:?}"),
    }
    let own = format!("http://{}", server.addr);
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("origin", own.parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(req).await.is_ok(),
        "own origin"
    );
    let (status, _) = server
        .raw_request(
            "POST",
            "/api/items",
            &[
                ("content-type", "application/json"),
                ("origin", "https://evil.example"),
            ],
            Some(r#"{"name":"x"}"#),
        )
        .await;
    assert_eq!(status, 403);
    // What an HTML form can send cross-site is refused before anything else.
    let (status, _) = server
        .raw_request(
            "POST",
            "/api/items",
            &[("content-type", "text/plain")],
            Some(r#"{"name":"x"}"#),
        )
        .await;
    assert_eq!(status, 415);
    // CORS is answered for the allowed origin only.
    let (status, _) = server
        .raw_request(
            "OPTIONS",
            "/api/items",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 204);
    let rows: Vec<Value> = pglive_testkit::fresh_json(&db, "SELECT * FROM items").await;
    assert!(rows.is_empty(), "nothing was written");
    server.stop().await;

    let mut config = Config::new(db.url.clone());
    config.allowed_hosts = vec!["app.example".into()];
    let server = TestServer::with_config(config).await;
    let (status, _) = server.get("/metrics").await;
    assert_eq!(status, 421, "a rebinding host name");
    let (status, _) = server
        .raw_request("GET", "/metrics", &[("host", "app.example")], None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.get("/healthz").await.0, 200, "probes use addresses");
    server.stop().await;
}

/// Finding 11: cleartext HTTP/2, dotfiles and symlinks out of the web app,
/// HEAD, security headers, and close codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_surface_is_tight() {
    let db = TestDb::new().await;
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html><p>app").unwrap();
    std::fs::write(web.path().join(".env"), "SECRET=1").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), web.path().join("out")).unwrap();
    let mut config = Config::new(db.url.clone());
    config.web_dir = Some(web.path().to_path_buf());
    let server = TestServer::with_config(config).await;

    let mut h2 = TcpStream::connect(server.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (answer, _) = read_all(&mut h2, Duration::from_secs(5)).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1"),
        "cleartext HTTP/2 was spoken: {answer:?}"
    );

    for path in ["/.env", "/%2eenv", "/out/secret.txt", "/../etc/passwd"] {
        let (status, body) = server.get(path).await;
        assert!(
            !body.contains("SECRET") && !body.contains("secret"),
            "{path}"
        );
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    let (status, body) = server.request("HEAD", "/", None).await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(server.request("HEAD", "/healthz", None).await.0, 200);

    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_all(&mut s, Duration::from_secs(5)).await;
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(head.contains("referrer-policy:"), "{head}");

    // Invalid UTF-8 in a text frame closes with 1007.
    let mut c = Client::connect(&server).await;
    c.ws.send(Message::Frame(Frame::message(
        vec![0xff, 0xfe],
        OpCode::Data(Data::Text),
        true,
    )))
    .await
    .unwrap();
    c.drain(Duration::from_secs(3)).await;
    assert_eq!(c.close_code, Some(1007));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_decides_what_frames_are_accepted() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    // An unknown field: the published client-message.json refuses it, so
    // does the server.
    c.send(json!({"type":"unsubscribe","id":"a","extra":true}))
        .await;
    c.error("bad_frame").await;
    c.send(json!({"type":"subscribe","id":"a","query":{"table":"items"},"where":"1=1"}))
        .await;
    c.error("bad_frame").await;
    server.stop().await;
}
