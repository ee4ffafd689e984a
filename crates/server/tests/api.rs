//! The REST write API: typed bodies, validation, status codes, and live
//! updates that arrive through the trigger like any other write.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)] // Tests fail loudly by design.

use pglive_testkit::{Client, TestDb, TestServer, fresh_json};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_writes_round_trip_and_go_live() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let mut c = Client::connect(&server).await;
    c.subscribe("items", json!({"table":"items"})).await;
    assert!(c.until(|c| c.subs.contains_key("items")).await);

    let (status, body) = server
        .request("POST", "/api/items", Some(r#"{"name":"first"}"#))
        .await;
    assert_eq!(status, 201, "{body}");
    let item: Value = serde_json::from_str(&body).unwrap();
    let id = item["id"]
        .as_str()
        .expect("a bigint key travels as a string")
        .to_owned();
    assert!(
        c.until(|c| c.rows("items").iter().any(|r| r["name"] == "first"))
            .await
    );

    let (status, body) = server
        .request(
            "PATCH",
            &format!("/api/items/{id}"),
            Some(r#"{"name":"renamed"}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        c.until(|c| c.rows("items").iter().any(|r| r["name"] == "renamed"))
            .await
    );

    let (status, _) = server
        .request("DELETE", &format!("/api/items/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert!(c.until(|c| c.rows("items").is_empty()).await);

    let (status, body) = server
        .request("DELETE", &format!("/api/items/{id}"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "not_found"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_writes_are_refused_and_write_nothing() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let cases = [
        (
            "POST",
            "/api/items",
            r#"{"name":""}"#,
            400,
            "validation",
            Some("name"),
        ),
        (
            "POST",
            "/api/items",
            r#"{"name":"   "}"#,
            400,
            "validation",
            Some("name"),
        ),
        (
            "POST",
            "/api/items",
            r#"{"nam":"x"}"#,
            400,
            "validation",
            None,
        ),
        (
            "POST",
            "/api/items",
            r#"{"name":"x""#,
            400,
            "validation",
            None,
        ),
        (
            "POST",
            "/api/tasks",
            r#"{"title":"t","priority":9}"#,
            400,
            "validation",
            Some("priority"),
        ),
        (
            "POST",
            "/api/tasks",
            r#"{"title":"t","status":"lost"}"#,
            400,
            "validation",
            None,
        ),
        (
            "PATCH",
            "/api/tasks/1",
            r#"{}"#,
            400,
            "validation",
            Some("body"),
        ),
        (
            "PATCH",
            "/api/tasks/999",
            r#"{"title":"x"}"#,
            404,
            "not_found",
            None,
        ),
        (
            "PATCH",
            "/api/items/999",
            r#"{"name":"x"}"#,
            404,
            "not_found",
            None,
        ),
        ("GET", "/api/nowhere", "", 404, "not_found", None),
    ];
    let long = format!(r#"{{"name":"{}"}}"#, "x".repeat(201));
    let mut all: Vec<(&str, &str, String, u16, &str, Option<&str>)> = cases
        .iter()
        .map(|(m, p, b, s, c, f)| (*m, *p, b.to_string(), *s, *c, *f))
        .collect();
    all.push(("POST", "/api/items", long, 400, "validation", Some("name")));
    for (method, path, body, status, code, field) in all {
        let (got, text) = server.request(method, path, Some(&body)).await;
        assert_eq!(got, status, "{method} {path} {body}: {text}");
        let err: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body: {text}"));
        assert_eq!(err["code"], code, "{text}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
        if let Some(field) = field {
            assert_eq!(err["field"], field, "{text}");
        }
    }
    let rows = fresh_json(&db, "SELECT id FROM items UNION ALL SELECT id FROM tasks").await;
    assert!(rows.is_empty(), "nothing was written: {rows:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_patch_sets_and_clears_fields() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let (status, body) = server
        .request(
            "POST",
            "/api/tasks",
            Some(r#"{"title":"ship","assignee":"alice","due_date":"2026-12-24","priority":2}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let task: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(task["status"], "todo");
    let id = task["id"].as_i64().unwrap();
    let (status, body) = server
        .request(
            "PATCH",
            &format!("/api/tasks/{id}"),
            Some(r#"{"assignee":null,"status":"done"}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let task: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(task["assignee"], Value::Null);
    assert_eq!(task["status"], "done");
    assert_eq!(task["due_date"], "2026-12-24", "untouched fields stay");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    assert_eq!(server.get("/healthz").await.0, 200);
    assert_eq!(server.get("/readyz").await.0, 200);
    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "pglive_connections",
        "pglive_groups",
        "pglive_refreshes_total",
        "pglive_bytes_sent_total",
        "pglive_capture_up",
    ] {
        assert!(
            text.contains(&format!("\n{name} ")) || text.starts_with(&format!("{name} ")),
            "{name} missing"
        );
    }
    assert_eq!(
        server.get("/ws").await.0,
        426,
        "plain GET on /ws asks for an upgrade"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origins_can_be_restricted() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let db = TestDb::new().await;
    let mut config = pglive_server::config::Config::new(db.url.clone());
    config.allowed_origins = vec!["http://good.example".into()];
    let server = TestServer::with_config(config).await;
    let connect = |origin: &'static str| {
        let mut request = server.ws_url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let refused = connect("http://evil.example").await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    assert!(connect("http://good.example").await.is_ok());
    server.stop().await;
}
